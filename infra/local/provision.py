#!/usr/bin/env python3
"""Provision the local paysaga stack from infra/template.yaml, the single source of truth.

Run by `infra/local/stack.sh up|provision` with the Python of .local/venv (boto3, cfn-lint).

1. Parses the SAM template with cfn-lint's decoder (it understands !Ref, !GetAtt, !Sub, ...).
2. Deploys, through LocalStack's CloudFormation, the part LocalStack can create offline: the
   template minus Lambda functions, HTTP APIs (no Docker, no downloads here) and DynamoDB tables
   (LocalStack would download DynamoDB Local), minus whatever refers to them. Idempotent:
   a stack deployed from the same template and parameters is left alone; a changed or failed
   one is deleted and created again (LocalStack 4.9's UpdateStack does not apply changes).
3. Creates the DynamoDB tables in DynamoDB Local from their template Properties, named
   `<stack>-<logical id without "Table", lower case>` (WalletsTable -> paysaga-local-wallets).
4. Writes .local/wiring.json (what infra/local/local-lambda and the tests read: queues, tables,
   functions with their environment resolved to local ids, HTTP routes, SQS and DynamoDB stream
   triggers and schedules) and .local/stack.env (export lines for the AWS SDKs and CLI, the Lambda endpoint
   being local-lambda's Invoke API).

No resource name is written in this file: every name, queue and trigger comes from the template.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Callable

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT_ID = "000000000000"  # LocalStack's default account

# Resource types the local stack cannot (or must not) create through LocalStack's CloudFormation.
# The functions' roles and log groups serve Lambda, which local-lambda plays here (it enforces no
# IAM and logs under .local/logs): not created locally. Neither are the operators' alarms, their
# SNS topic and the dashboard: LocalStack runs no CloudWatch or SNS here (stack.sh starts
# sqs,events,cloudformation,sts,iam,logs), and nothing would write the AWS/SQS and AWS/Lambda
# metrics they watch. Named here, not left to the dependants rule below: the queue alarms and
# the topic refer to nothing else that is dropped.
NOT_ON_LOCALSTACK = ("AWS::Serverless::", "AWS::Lambda::", "AWS::ApiGateway", "AWS::DynamoDB::Table",
                     "AWS::IAM::", "AWS::Logs::", "AWS::CloudWatch::", "AWS::SNS::")
SERVERLESS_PREFIX = "AWS::Serverless::"
SERVERLESS_FUNCTION = "AWS::Serverless::Function"
TABLE = "AWS::DynamoDB::Table"
QUEUE = "AWS::SQS::Queue"
BUS = "AWS::Events::EventBus"
RULE = "AWS::Events::Rule"

STACK_OK = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"}  # anything else settled is replaced
PARAMETER_CONSTRAINTS = ("MinValue", "MaxValue", "AllowedValues", "AllowedPattern", "MinLength", "MaxLength")


class ProvisionError(Exception):
    """Something the user must fix; printed without a traceback."""


def log(msg: str) -> None:
    print(f"provision: {msg}", flush=True)


# --------------------------------------------------------------------------- template model

def plain(node: Any) -> Any:
    """cfn-lint's decoder returns dict/str subclasses carrying line marks; make plain JSON values."""
    if isinstance(node, dict):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    if isinstance(node, str):
        return str(node)
    return node


def load_template(path: Path) -> dict:
    template, matches = decode(str(path))
    if matches or template is None:
        raise ProvisionError(f"cannot parse {path}: " + "; ".join(str(m) for m in matches))
    return plain(template)


def references(value: Any) -> set[str]:
    """Logical ids (resources or parameters) a template value refers to."""
    found: set[str] = set()
    if isinstance(value, dict):
        if len(value) == 1:
            key, arg = next(iter(value.items()))
            if key == "Ref" and isinstance(arg, str):
                found.add(arg)
            elif key == "Fn::GetAtt":
                found.add(arg[0] if isinstance(arg, list) else str(arg).split(".", 1)[0])
            elif key == "Fn::Sub":
                text, variables = (arg[0], arg[1]) if isinstance(arg, list) else (arg, {})
                for name in re.findall(r"\$\{([^!}][^}]*)\}", text):
                    name = name.split(".", 1)[0]
                    if name not in variables:
                        found.add(name)
                found |= references(variables)
                return {r for r in found if not r.startswith("AWS::")}
        for item in value.values():
            found |= references(item)
    elif isinstance(value, list):
        for item in value:
            found |= references(item)
    return {r for r in found if not r.startswith("AWS::")}


def resource_references(resource: dict) -> set[str]:
    depends = resource.get("DependsOn", [])
    return references(resource.get("Properties", {})) | set(
        [depends] if isinstance(depends, str) else depends
    )


def merge_globals(defaults: Any, own: Any) -> Any:
    """SAM's Globals rules: maps merge, lists append, scalars are overridden by the resource."""
    if isinstance(defaults, dict) and isinstance(own, dict):
        merged = dict(defaults)
        for key, value in own.items():
            merged[key] = merge_globals(defaults[key], value) if key in defaults else value
        return merged
    if isinstance(defaults, list) and isinstance(own, list):
        return defaults + own
    return own


def functions_of(template: dict) -> dict[str, dict]:
    defaults = template.get("Globals", {}).get("Function", {})
    return {
        lid: merge_globals(defaults, res.get("Properties", {}))
        for lid, res in template["Resources"].items()
        if res["Type"] == SERVERLESS_FUNCTION
    }


def target_function(target: dict, functions: set[str]) -> str | None:
    """The function a rule target invokes: its Arn is `Fn::GetAtt [<function>, Arn]`."""
    arn = target.get("Arn")
    if not (isinstance(arn, dict) and len(arn) == 1 and "Fn::GetAtt" in arn):
        return None
    arg = arn["Fn::GetAtt"]
    lid, attr = arg if isinstance(arg, list) else str(arg).split(".", 1)
    return lid if attr == "Arn" and lid in functions else None


def schedule_entry(rule: str, expression: str, input_text: Any, enabled: bool) -> dict:
    if input_text is not None and not isinstance(input_text, str):
        input_text = json.dumps(input_text)  # a mapping written in YAML: its JSON text
    return {"rule": rule, "expression": expression, "input": input_text, "enabled": enabled}


def schedules_of(template: dict, resolve: Callable[[Any], Any]) -> dict[str, list[dict]]:
    """Function logical id -> its schedules: the AWS::Events::Rule resources with a
    ScheduleExpression and a target whose Arn is the function's (local-lambda plays them), and
    the functions' own SAM `Schedule` events (SAM names their rule <function><event>)."""
    functions = functions_of(template)
    found: dict[str, list[dict]] = {lid: [] for lid in functions}
    for lid, res in template["Resources"].items():
        props = res.get("Properties", {})
        if res["Type"] != RULE or "ScheduleExpression" not in props:
            continue
        enabled = str(resolve(props.get("State", "ENABLED"))) != "DISABLED"
        for target in props.get("Targets", []):
            function = target_function(target, set(functions))
            if function is None:
                continue
            for unplayed in ("InputPath", "InputTransformer"):
                if unplayed in target:
                    log(f"{lid}: target {function} {unplayed} is not played locally; "
                        "the scheduled event is sent as it is")
            found[function].append(schedule_entry(
                lid, str(resolve(props["ScheduleExpression"])),
                resolve(target["Input"]) if "Input" in target else None, enabled))
    for lid, props in functions.items():
        for ev_name, ev in props.get("Events", {}).items():
            if ev["Type"] != "Schedule":
                continue
            ev_props = ev.get("Properties", {})
            enabled = (resolve(ev_props.get("Enabled", True)) not in (False, "false", "False")
                       and str(resolve(ev_props.get("State", "ENABLED"))) != "DISABLED")
            found[lid].append(schedule_entry(
                f"{lid}{ev_name}", str(resolve(ev_props["Schedule"])),
                resolve(ev_props["Input"]) if "Input" in ev_props else None, enabled))
    return found


def maximum_concurrency(resolve: Callable[[Any], Any], event_props: dict) -> int | None:
    """An SQS trigger's ScalingConfig.MaximumConcurrency (a parameter's value), if it has one."""
    value = event_props.get("ScalingConfig", {}).get("MaximumConcurrency")
    return None if value is None else int(resolve(value))


# Properties of a `Type: DynamoDB` event local-lambda does not play (it logs them and goes on).
UNPLAYED_STREAM_PROPERTIES = ("ParallelizationFactor", "TumblingWindowInSeconds", "MaximumRecordAgeInSeconds",
                              "StartingPositionTimestamp", "MetricsConfig", "KmsKeyArn")
STARTING_POSITIONS = ("TRIM_HORIZON", "LATEST")


def flag(value: Any) -> bool:
    """A template boolean, written as YAML true/false or as a string."""
    return value is True or str(value).lower() == "true"


def stream_trigger(where: str, ev_props: dict, resolve: Callable[[Any], Any], tables: dict[str, str],
                   queues: dict[str, dict]) -> dict:
    """The wiring of a function's `Type: DynamoDB` event (an event source mapping on a table's
    stream), for local-lambda: the table by logical id and name, and what AWS does with batches."""
    stream = ev_props.get("Stream")
    named = references(stream)
    table = next(iter(named)) if len(named) == 1 else None
    get_att = stream.get("Fn::GetAtt") if isinstance(stream, dict) else None
    attribute = (get_att[1] if isinstance(get_att, list) else str(get_att).split(".", 1)[-1]) if get_att else None
    if table not in tables or attribute != "StreamArn":
        raise ProvisionError(f"{where}: Stream must be !GetAtt <table>.StreamArn of a table of this template, "
                             f"found {stream!r}")
    try:
        resolve(stream)
    except ProvisionError:
        raise ProvisionError(f"{where}: table {table} has no stream (give it a StreamSpecification)") from None
    position = str(resolve(ev_props.get("StartingPosition", "")))
    if position not in STARTING_POSITIONS:
        raise ProvisionError(f"{where}: StartingPosition {position!r} is not one of {', '.join(STARTING_POSITIONS)}")
    filters = []
    for entry in ev_props.get("FilterCriteria", {}).get("Filters", []):
        pattern = resolve(entry.get("Pattern"))
        filters.append(pattern if isinstance(pattern, str) else json.dumps(pattern))
    on_failure_url = None
    on_failure = ev_props.get("DestinationConfig", {}).get("OnFailure")
    if on_failure:
        kind = str(on_failure.get("Type", "SQS"))
        if kind != "SQS":
            raise ProvisionError(f"{where}: an on-failure destination of type {kind} is not played locally "
                                 "(local-lambda sends on-failure records to SQS queues only)")
        arn = resolve(on_failure.get("Destination"))
        queue = next((lid for lid, q in queues.items() if q["arn"] == arn), None)
        if queue is None:
            raise ProvisionError(f"{where}: on-failure destination {arn} is not a queue of this template")
        on_failure_url = queues[queue]["url"]
    for unplayed in UNPLAYED_STREAM_PROPERTIES:
        if unplayed in ev_props:
            log(f"{where}: {unplayed} is not played locally")
    return {
        "table": table,
        "table_name": tables[table],
        "starting_position": position,
        "batch_size": int(resolve(ev_props.get("BatchSize", 100))),
        "maximum_batching_window_seconds": int(resolve(ev_props.get("MaximumBatchingWindowInSeconds", 0))),
        "report_batch_item_failures": "ReportBatchItemFailures" in ev_props.get("FunctionResponseTypes", []),
        "bisect_batch_on_function_error": flag(resolve(ev_props.get("BisectBatchOnFunctionError", False))),
        "maximum_retry_attempts": int(resolve(ev_props.get("MaximumRetryAttempts", -1))),
        "filters": filters,
        "on_failure_queue_url": on_failure_url,
    }


def conditions_named(value: Any, conditions: dict) -> set[str]:
    """The template conditions a value uses (a resource's or output's `Condition`, `Fn::If`'s
    first argument), with the conditions those conditions use in turn."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, arg in node.items():
                if key == "Condition" and isinstance(arg, str) and arg in conditions:
                    found.add(arg)
                elif key == "Fn::If" and isinstance(arg, list) and arg and isinstance(arg[0], str):
                    found.add(arg[0])
                walk(arg)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(value)
    seen: set[str] = set()
    while found - seen:
        name = (found - seen).pop()
        seen.add(name)
        walk(conditions.get(name))
    return seen


def derive_localstack_template(template: dict) -> tuple[dict, list[str]]:
    """The template minus what LocalStack cannot create here, and minus what refers to that."""
    resources = template["Resources"]
    dropped = {lid for lid, r in resources.items() if r["Type"].startswith(NOT_ON_LOCALSTACK)}
    changed = True
    while changed:  # drop dependants of dropped resources, transitively
        changed = False
        for lid, res in resources.items():
            if lid not in dropped and resource_references(res) & dropped:
                dropped.add(lid)
                changed = True
    kept = {lid: r for lid, r in resources.items() if lid not in dropped}
    derived = {k: v for k, v in template.items() if k not in ("Resources", "Outputs", "Conditions")}
    derived["Resources"] = kept
    outputs = {
        name: out for name, out in template.get("Outputs", {}).items()
        if not references(out) & dropped
    }
    if outputs:
        derived["Outputs"] = outputs
    # Only the conditions what is kept uses (HasAlarmEmail serves a dropped subscription).
    conditions = template.get("Conditions", {})
    used = conditions_named([kept, outputs], conditions)
    if used:
        derived["Conditions"] = {name: conditions[name] for name in sorted(used)}
    if not any(r["Type"].startswith(SERVERLESS_PREFIX) for r in kept.values()):
        derived.pop("Transform", None)
        derived.pop("Globals", None)
    derived["Description"] = "paysaga local stack, derived from infra/template.yaml by infra/local/provision.py"
    return derived, sorted(dropped)


# --------------------------------------------------------------------------- resolving intrinsics

class Resolver:
    """Resolves template values against local physical ids."""

    def __init__(self, params: dict[str, str], pseudo: dict[str, str]):
        self.params = params
        self.pseudo = pseudo
        self.refs: dict[str, str] = {}  # logical id -> what Ref returns
        self.attrs: dict[str, dict[str, str]] = {}  # logical id -> attribute -> value

    def ref(self, name: str) -> str:
        for table in (self.pseudo, self.params, self.refs):
            if name in table:
                return table[name]
        raise ProvisionError(f"cannot resolve Ref {name} locally")

    def get_att(self, lid: str, attr: str) -> str:
        try:
            return self.attrs[lid][attr]
        except KeyError:
            raise ProvisionError(f"cannot resolve Fn::GetAtt {lid}.{attr} locally") from None

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            key, arg = next(iter(value.items()))
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                lid, attr = arg if isinstance(arg, list) else str(arg).split(".", 1)
                return self.get_att(lid, attr)
            if key == "Fn::Sub":
                text, variables = (arg[0], arg[1]) if isinstance(arg, list) else (arg, {})
                local = {k: str(self(v)) for k, v in variables.items()}

                def sub(m: re.Match) -> str:
                    name = m.group(1)
                    if name in local:
                        return local[name]
                    if "." in name and not name.startswith("AWS::"):
                        return str(self.get_att(*name.split(".", 1)))
                    return str(self.ref(name))

                return re.sub(r"\$\{([^!}][^}]*)\}", sub, text)
            if key == "Fn::Join":
                items = self(arg[1])
                if isinstance(items, str):  # the Ref of a CommaDelimitedList: its comma list
                    items = items.split(",")
                return str(arg[0]).join(str(v) for v in items)
            if key.startswith("Fn::"):
                raise ProvisionError(f"intrinsic {key} is not supported by provision.py")
        return {k: self(v) for k, v in value.items()}


# --------------------------------------------------------------------------- AWS helpers

def poll(what: str, check: Callable[[], Any], deadline_s: float, every_s: float = 1.0) -> Any:
    """Calls check() until it returns something truthy, or fails loudly after the deadline."""
    end = time.monotonic() + deadline_s
    last_note = time.monotonic()
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= end:
            raise ProvisionError(f"timed out after {deadline_s:.0f} s waiting for {what}")
        if time.monotonic() - last_note >= 10:
            log(f"... still waiting for {what}")
            last_note = time.monotonic()
        time.sleep(every_s)


def stack_status(cfn, name: str) -> str | None:
    try:
        return cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
    except ClientError as e:
        if "does not exist" in str(e):
            return None
        raise


def failure_reasons(cfn, name: str) -> str:
    try:
        events = cfn.describe_stack_events(StackName=name)["StackEvents"]
    except ClientError:
        return "(no stack events)"
    lines = [
        f"  {e.get('LogicalResourceId')}: {e.get('ResourceStatus')} {e.get('ResourceStatusReason', '')}"
        for e in events
        if "FAILED" in e.get("ResourceStatus", "")
    ]
    return "\n".join(lines[:15]) or "(no failed resource events)"


def wait_stack(cfn, name: str, deadline_s: float) -> str | None:
    """Waits until the stack is no longer *_IN_PROGRESS; its status then, None once deleted."""

    def settled() -> tuple[str] | None:
        status = stack_status(cfn, name)
        if status is None or status == "DELETE_COMPLETE":
            return ("gone",)
        return None if status.endswith("_IN_PROGRESS") else (status,)

    status = poll(f"stack {name} to settle", settled, deadline_s, 0.5)[0]
    return None if status == "gone" else status


def deployed(cfn, name: str) -> tuple[Any, dict[str, str]]:
    """The template body (parsed) and parameters a stack was last deployed with."""
    body = cfn.get_template(StackName=name)["TemplateBody"]
    params = cfn.describe_stacks(StackName=name)["Stacks"][0].get("Parameters", [])
    return (json.loads(body) if isinstance(body, str) else body,
            {p["ParameterKey"]: p["ParameterValue"] for p in params})


def deploy_stack(cfn, name: str, body: str, params: dict[str, str], deadline_s: float) -> str:
    """Create the stack, or leave it as it is when already deployed from the same template and
    parameters; returns what was done.

    A changed template replaces the stack (delete, then create) rather than updating it: measured
    on LocalStack 4.9.2, UpdateStack reports UPDATE_COMPLETE without applying changed properties
    (a queue's VisibilityTimeout kept its old value). Replacing gives new queue URLs, which
    wiring.json then carries; processes that read the old wiring must restart.
    """
    status = stack_status(cfn, name)
    if status and status.endswith("_IN_PROGRESS"):
        log(f"stack {name} is {status}; waiting for it to settle")
        status = wait_stack(cfn, name, deadline_s)
    if status == "DELETE_COMPLETE":
        status = None
    done = "created"
    if status in STACK_OK:
        if deployed(cfn, name) == (json.loads(body), params):
            return "unchanged"
        log(f"stack {name} was deployed from another template or parameters; replacing it")
        done = "replaced"
    elif status is not None:
        log(f"stack {name} is {status}; deleting it to recreate it")
        done = "recreated"
    if status is not None:
        cfn.delete_stack(StackName=name)
        final = wait_stack(cfn, name, deadline_s)
        if final is not None:
            raise ProvisionError(f"deleting stack {name} ended in {final}:\n{failure_reasons(cfn, name)}\n"
                                 "Run `make local-down local-up` to start from a clean LocalStack state.")

    cfn.create_stack(
        StackName=name, TemplateBody=body,
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    final = wait_stack(cfn, name, deadline_s)
    if final != "CREATE_COMPLETE":
        raise ProvisionError(
            f"creating stack {name} ended in {final}:\n{failure_reasons(cfn, name)}\n"
            "A failed rollback may leave resources behind: `make local-down local-up` starts clean."
        )
    return done


# --------------------------------------------------------------------------- DynamoDB Local

def table_name(stack: str, lid: str) -> str:
    return f"{stack}-{re.sub(r'Table$', '', lid).lower()}"


def create_table_request(name: str, props: dict) -> dict:
    """CreateTable arguments from CloudFormation table Properties (the keys the API shares)."""
    req: dict[str, Any] = {"TableName": name}
    for key in ("AttributeDefinitions", "KeySchema", "BillingMode", "ProvisionedThroughput",
                "LocalSecondaryIndexes", "DeletionProtectionEnabled"):
        if key in props:
            req[key] = props[key]
    if "GlobalSecondaryIndexes" in props:
        req["GlobalSecondaryIndexes"] = [
            {k: v for k, v in gsi.items() if k in ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput")}
            for gsi in props["GlobalSecondaryIndexes"]
        ]
    if "StreamSpecification" in props:
        req["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
    return req


def ensure_table(ddb, name: str, props: dict, deadline_s: float) -> tuple[str, str, str | None, list[str]]:
    """Creates the table if missing (or gives an existing one the stream the template asks for);
    returns (what was done, table ARN, its latest stream's ARN if it has a stream, notes on extras)."""
    req = create_table_request(name, props)
    try:
        desc = ddb.describe_table(TableName=name)["Table"]
        done = "exists"
        if sorted(map(json.dumps, desc["KeySchema"])) != sorted(map(json.dumps, req["KeySchema"])):
            raise ProvisionError(
                f"table {name} exists with key schema {desc['KeySchema']}, template says {req['KeySchema']}; "
                "run `make local-down local-up` (DynamoDB Local runs in memory)"
            )
    except ClientError as e:
        if e.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        ddb.create_table(**req)
        done = "created"
    desc = poll(
        f"table {name} to be ACTIVE",
        lambda: (d := ddb.describe_table(TableName=name)["Table"])["TableStatus"] == "ACTIVE" and d,
        deadline_s,
        0.2,
    )

    notes: list[str] = []
    wanted_stream = props.get("StreamSpecification")
    stream = desc.get("StreamSpecification") or {}
    if wanted_stream and not stream.get("StreamEnabled"):
        # A table made before the template gave it a stream (`provision` against a running stack).
        ddb.update_table(TableName=name, StreamSpecification=req["StreamSpecification"])
        desc = poll(f"table {name} to be ACTIVE with its stream",
                    lambda: (d := ddb.describe_table(TableName=name)["Table"]).get("LatestStreamArn") and d,
                    deadline_s, 0.2)
        done += ", stream enabled"
    elif wanted_stream and stream.get("StreamViewType") != wanted_stream.get("StreamViewType"):
        raise ProvisionError(
            f"table {name} has a {stream.get('StreamViewType')} stream, template says "
            f"{wanted_stream.get('StreamViewType')}; run `make local-down local-up` (DynamoDB Local runs in memory)"
        )
    if wanted_stream:
        notes.append(f"stream {wanted_stream.get('StreamViewType')}")
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        try:
            current = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
            if current.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
                ddb.update_time_to_live(
                    TableName=name,
                    TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
                )
            notes.append(f"ttl={ttl['AttributeName']}")
        except ClientError as e:
            notes.append(f"ttl not supported locally ({e.response['Error']['Code']})")
    pitr = props.get("PointInTimeRecoverySpecification", {})
    if pitr.get("PointInTimeRecoveryEnabled"):
        try:
            ddb.update_continuous_backups(
                TableName=name,
                PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
            )
            notes.append("pitr")
        except ClientError as e:
            notes.append(f"pitr not emulated ({e.response['Error']['Code']})")
    if "SSESpecification" in props:
        notes.append("sse not emulated")
    return done, desc["TableArn"], desc.get("LatestStreamArn") if wanted_stream else None, notes


# --------------------------------------------------------------------------- main flow

# The local stand-in for API Gateway's JWT authorizer (the api's `local-authorizer` feature)
# checks tokens against this issuer and audience and the development key below.
DEV_JWT_ISSUER = "https://paysaga.local/dev-issuer"
DEV_JWT_AUDIENCE = "paysaga-api"


def ensure_dev_jwt_key(local_dir: Path) -> dict[str, str]:
    """The local stack's development signing key (RSA 2048, made once per checkout) and the
    settings `paysaga-admin dev-token` signs with; answers the settings."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    folder = (local_dir / "dev-jwt").resolve()
    private_key, public_key = folder / "private.pem", folder / "public.pem"
    if not private_key.exists() or not public_key.exists():
        folder.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private_pem = key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
        public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
        write_atomically(public_key, public_pem.decode())
        write_atomically(private_key, private_pem.decode())
        private_key.chmod(0o600)
        log(f"made a development JWT signing key in {folder}")
    settings = {"issuer": DEV_JWT_ISSUER, "audience": DEV_JWT_AUDIENCE,
                "private_key": str(private_key), "public_key": str(public_key)}
    write_atomically(folder / "settings.json", json.dumps(settings, indent=2) + "\n")
    return settings


def dev_jwks(public_key: Path) -> str:
    """The development key as a JWKS document (its one RSA key), as an identity provider
    publishes its keys: what the saga checks a payer's consent against (ConsentJwks)."""
    import base64
    from cryptography.hazmat.primitives import serialization

    numbers = serialization.load_pem_public_key(public_key.read_bytes()).public_numbers()

    def b64(value: int) -> str:
        return base64.urlsafe_b64encode(value.to_bytes((value.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()

    key = {"kty": "RSA", "use": "sig", "alg": "RS256", "n": b64(numbers.n), "e": b64(numbers.e)}
    return json.dumps({"keys": [key]}, separators=(",", ":"))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--template", type=Path, default=ROOT / "infra" / "template.yaml")
    p.add_argument("--stack-name", default="paysaga-local")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--aws-endpoint", default="http://127.0.0.1:4566")
    p.add_argument("--dynamodb-endpoint", default="http://127.0.0.1:8000")
    p.add_argument("--invoke-addr", default=os.environ.get("PAYSAGA_INVOKE_ADDR") or "127.0.0.1:9001",
                   help="where local-lambda serves the Lambda Invoke API (its --invoke-addr);"
                   " written to stack.env as AWS_ENDPOINT_URL_LAMBDA")
    p.add_argument("--local-dir", type=Path, default=ROOT / ".local")
    p.add_argument("--parameter", action="append", default=[], metavar="KEY=VALUE",
                   help="template parameter override (defaults QueueVisibilityTimeout=5, FlowDeadlineSeconds=30,"
                   f" PaymentProcessorUrl=http://127.0.0.1:4010, JwtIssuer={DEV_JWT_ISSUER}, 2 for each SQS"
                   " trigger's concurrency parameter)")
    p.add_argument("--timeout", type=float, default=180, help="deadline in seconds for each wait")
    return p.parse_args()


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def main() -> int:
    args = parse_args()
    started = time.monotonic()
    template = load_template(args.template)
    resources = template["Resources"]

    # Local values: short redelivery for fast tests; the saga charges through the fake payment
    # processor that infra/local/system.sh starts on this address (infra/local/payment-processor);
    # tokens are signed by the local stack's development key, with its issuer (these two have
    # no default in the template: a deploy must be given them); two instances per SQS trigger
    # (local-lambda runs one process per instance, on a developer's machine), where production
    # defaults are sized for the HTTP API's throttle.
    # The saga checks the consent on payments requested straight on the bus against the same key.
    # GraphiQL, the in-browser GraphQL IDE, is served at /graphiql (it is off in AWS by default),
    # with its assets from local-lambda's front: the machine may have no internet.
    dev_jwt = ensure_dev_jwt_key(args.local_dir)
    overrides = {"QueueVisibilityTimeout": "5", "PaymentProcessorUrl": "http://127.0.0.1:4010",
                 "FlowDeadlineSeconds": "30",
                 "GraphiQL": "enabled", "GraphiQLAssetsUrl": "/graphiql/assets",
                 "JwtIssuer": DEV_JWT_ISSUER, "ConsentJwks": dev_jwks(Path(dev_jwt["public_key"])),
                 **{name: "2" for name in ("OrdinaryPaymentsConcurrency", "UrgentPaymentsConcurrency",
                                           "ReadModelsConcurrency", "AuditTrailConcurrency",
                                           "NotificationsConcurrency", "ReconcilerConcurrency")}}
    for item in args.parameter:
        key, sep, value = item.partition("=")
        if not sep:
            raise ProvisionError(f"--parameter {item!r} is not KEY=VALUE")
        overrides[key] = value
    declared = template.get("Parameters", {})
    unknown = set(overrides) - set(declared)
    if unknown:
        raise ProvisionError(f"parameters not in the template: {', '.join(sorted(unknown))}")
    unset = sorted(k for k, v in declared.items() if k not in overrides and "Default" not in v)
    if unset:
        raise ProvisionError(f"parameters without a default and without a local value: {', '.join(unset)} "
                             "(give them one in provision.py's overrides)")
    params = {k: str(overrides[k] if k in overrides else v["Default"]) for k, v in declared.items()}

    session = boto3.session.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name=args.region
    )
    cfg = Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"})
    aws = lambda service, url=args.aws_endpoint: session.client(service, endpoint_url=url, config=cfg)  # noqa: E731
    cfn, sqs, events = aws("cloudformation"), aws("sqs"), aws("events")
    ddb = aws("dynamodb", args.dynamodb_endpoint)

    # 1. LocalStack: what CloudFormation can create offline.
    derived, dropped = derive_localstack_template(template)
    # A local value need not be one AWS accepts (QueueVisibilityTimeout 5, below the 30 s Lambda
    # requires of a queue that triggers a 30 s function: local-lambda, not Lambda, plays the
    # mappings here), so the derived template does not constrain what is overridden.
    for key in overrides:
        for constraint in PARAMETER_CONSTRAINTS:
            derived["Parameters"][key].pop(constraint, None)
    log(f"deploying stack {args.stack_name} to {args.aws_endpoint} "
        f"({len(derived['Resources'])} resources; created elsewhere or not locally: {', '.join(dropped)})")
    t0 = time.monotonic()
    outcome = deploy_stack(cfn, args.stack_name, json.dumps(derived), params, args.timeout)
    log(f"stack {args.stack_name} {outcome} in {time.monotonic() - t0:.1f} s")

    resolver = Resolver(params, {
        "AWS::StackName": args.stack_name, "AWS::Region": args.region, "AWS::AccountId": ACCOUNT_ID,
        "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com", "AWS::NoValue": "",
    })
    physical = {
        r["LogicalResourceId"]: r.get("PhysicalResourceId", "")
        for r in cfn.describe_stack_resources(StackName=args.stack_name)["StackResources"]
    }
    missing = set(derived["Resources"]) - set(physical)
    if missing:
        raise ProvisionError(f"stack {args.stack_name} lacks resources: {', '.join(sorted(missing))}")

    queue_attrs: dict[str, dict] = {}
    for lid, res in derived["Resources"].items():
        pid = physical[lid]
        if res["Type"] == QUEUE:
            attrs = sqs.get_queue_attributes(QueueUrl=pid, AttributeNames=["All"])["Attributes"]
            queue_attrs[lid] = attrs
            resolver.refs[lid] = pid
            resolver.attrs[lid] = {"Arn": attrs["QueueArn"], "QueueUrl": pid,
                                   "QueueName": attrs["QueueArn"].rsplit(":", 1)[1]}
        elif res["Type"] == BUS:
            bus = events.describe_event_bus(Name=pid)
            resolver.refs[lid] = bus["Name"]
            resolver.attrs[lid] = {"Arn": bus["Arn"], "Name": bus["Name"]}
    for lid, res in derived["Resources"].items():  # rules need their bus resolved first
        if res["Type"] == RULE:
            bus_name = resolver(res["Properties"].get("EventBusName", "default"))
            rule_name = physical[lid].split("|")[-1]
            rule = events.describe_rule(Name=rule_name, EventBusName=bus_name)
            resolver.refs[lid] = rule["Name"]
            resolver.attrs[lid] = {"Arn": rule["Arn"]}

    # 2. DynamoDB Local: the tables.
    tables: dict[str, str] = {}
    table_notes: dict[str, str] = {}
    for lid, res in resources.items():
        if res["Type"] != TABLE:
            continue
        name = table_name(args.stack_name, lid)
        done, arn, stream_arn, notes = ensure_table(ddb, name, res.get("Properties", {}), args.timeout)
        tables[lid] = name
        table_notes[lid] = f"{done}; {', '.join(notes) or 'no extras'}"
        resolver.refs[lid] = name
        resolver.attrs[lid] = {"Arn": arn, **({"StreamArn": stream_arn} if stream_arn else {})}

    # 3. Wiring for local-lambda and the tests.
    queues = {}
    for lid, res in resources.items():
        if res["Type"] != QUEUE:
            continue
        redrive = res.get("Properties", {}).get("RedrivePolicy")
        dlq = next(iter(references(redrive.get("deadLetterTargetArn")))) if redrive else None
        queues[lid] = {
            "url": resolver.refs[lid],
            "arn": resolver.attrs[lid]["Arn"],
            "dead_letter_queue": dlq,
            "max_receive_count": int(resolver(redrive["maxReceiveCount"])) if redrive else None,
        }
    arn_to_queue = {q["arn"]: lid for lid, q in queues.items()}

    schedules = schedules_of(template, resolver)
    functions = []
    for lid, props in functions_of(template).items():
        code_uri = props.get("CodeUri")
        if not isinstance(code_uri, str):
            raise ProvisionError(f"{lid}: CodeUri must be a local path (e.g. ../target/lambda/<bin>/)")
        binary = code_uri.rstrip("/").rsplit("/", 1)[-1]
        routes, triggers, stream_triggers, open_routes = [], [], [], []
        for ev_name, ev in props.get("Events", {}).items():
            ev_props = ev.get("Properties", {})
            if ev["Type"] == "HttpApi":
                routes.append({"method": str(ev_props.get("Method", "ANY")).upper(),
                               "path": ev_props.get("Path", "$default")})
                if ev_props.get("Auth", {}).get("Authorizer") == "NONE":
                    open_routes.append(f"{routes[-1]['method']} {routes[-1]['path']}")
            elif ev["Type"] == "SQS":
                if ev_props.get("Enabled", True) is False:
                    log(f"{lid}.{ev_name}: disabled in the template, not wired")
                    continue
                arn = resolver(ev_props["Queue"])
                queue = arn_to_queue.get(arn)
                if queue is None:
                    raise ProvisionError(f"{lid}.{ev_name}: queue {arn} is not a queue of this template")
                triggers.append({
                    "queue": queue,
                    "queue_url": queues[queue]["url"],
                    "queue_arn": arn,
                    "batch_size": int(ev_props.get("BatchSize", 10)),
                    "maximum_batching_window_seconds": int(ev_props.get("MaximumBatchingWindowInSeconds", 0)),
                    "report_batch_item_failures":
                        "ReportBatchItemFailures" in ev_props.get("FunctionResponseTypes", []),
                    "maximum_concurrency": maximum_concurrency(resolver, ev_props),
                })
            elif ev["Type"] == "DynamoDB":
                if resolver(ev_props.get("Enabled", True)) in (False, "false", "False"):
                    log(f"{lid}.{ev_name}: disabled in the template, not wired")
                    continue
                stream_triggers.append(stream_trigger(f"{lid}.{ev_name}", ev_props, resolver, tables, queues))
            elif ev["Type"] != "Schedule":  # schedules_of has the Schedule events
                log(f"{lid}.{ev_name}: event type {ev['Type']} is not played locally")
        environment = {k: str(resolver(v))
                       for k, v in props.get("Environment", {}).get("Variables", {}).items()}
        if routes:  # no API Gateway locally: the function checks tokens itself
            environment.update({"PAYSAGA_LOCAL_JWT_PUBLIC_KEY": dev_jwt["public_key"],
                                "PAYSAGA_LOCAL_JWT_ISSUER": dev_jwt["issuer"],
                                "PAYSAGA_LOCAL_JWT_AUDIENCE": dev_jwt["audience"]})
            if open_routes:  # `Auth: {Authorizer: NONE}`: the gateway lets these through untouched
                environment["PAYSAGA_LOCAL_OPEN_ROUTES"] = ",".join(open_routes)
        # Where the fault-injection builds read the faults a test turns on and off (the relay's
        # event-relay.json, the saga's payment-saga.json; no file, no faults).
        environment["PAYSAGA_FAULTS_DIR"] = str((args.local_dir / "faults").resolve())
        functions.append({
            "logical_id": lid,
            "name": binary,
            "binary": binary,
            "timeout_seconds": int(props.get("Timeout", 3)),
            "memory_mb": int(props.get("MemorySize", 128)),
            "environment": environment,
            "http_routes": routes,
            "sqs_triggers": triggers,
            "stream_triggers": stream_triggers,
            "schedules": schedules[lid],
        })

    buses = [lid for lid, r in resources.items() if r["Type"] == BUS]
    if len(buses) != 1:
        raise ProvisionError(f"expected exactly one {BUS} in the template, found {buses}")
    wiring_path = (args.local_dir / "wiring.json").resolve()
    wiring = {
        "stack_name": args.stack_name,
        "region": args.region,
        "endpoints": {"aws": args.aws_endpoint, "dynamodb": args.dynamodb_endpoint},
        "event_bus_name": resolver.refs[buses[0]],
        "queues": queues,
        "tables": tables,
        "functions": functions,
    }
    write_atomically(wiring_path, json.dumps(wiring, indent=2) + "\n")
    env = {
        "AWS_ENDPOINT_URL": args.aws_endpoint,
        "AWS_ENDPOINT_URL_DYNAMODB": args.dynamodb_endpoint,
        # SDKs honour service-specific endpoints: Lambda calls go to local-lambda's Invoke API.
        "AWS_ENDPOINT_URL_LAMBDA": f"http://{args.invoke_addr}",
        "AWS_REGION": args.region,
        "AWS_DEFAULT_REGION": args.region,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "PAYSAGA_WIRING": str(wiring_path),
    }
    write_atomically(args.local_dir / "stack.env", "# written by infra/local/provision.py\n" + "".join(
        f"export {k}={shlex.quote(v)}\n" for k, v in env.items()))

    # 4. Summary, read back from the running emulators.
    print(f"\nlocal stack {args.stack_name} ({args.region}), event bus {wiring['event_bus_name']}")
    for lid, q in queues.items():
        live = queue_attrs[lid]
        redrive = json.loads(live["RedrivePolicy"]) if "RedrivePolicy" in live else None
        dlq = (f"-> DLQ {arn_to_queue.get(redrive['deadLetterTargetArn'], '?')} after "
               f"{redrive['maxReceiveCount']} receives" if redrive else "(no redrive)")
        print(f"  queue {lid:30} visibility {live['VisibilityTimeout']:>3} s {dlq}")
    for lid, res in derived["Resources"].items():
        if res["Type"] != RULE:
            continue
        bus_name = resolver(res["Properties"].get("EventBusName", "default"))
        for t in events.list_targets_by_rule(Rule=resolver.refs[lid], EventBusName=bus_name)["Targets"]:
            print(f"  rule  {lid:30} -> {arn_to_queue.get(t['Arn'], t['Arn'])}"
                  f" (retries {t.get('RetryPolicy', {}).get('MaximumRetryAttempts', '-')},"
                  f" DLQ {arn_to_queue.get(t.get('DeadLetterConfig', {}).get('Arn'), 'none')})")
    for lid, name in tables.items():
        print(f"  table {lid:30} {name} ({table_notes[lid]})")
    for f in functions:
        timers = "".join(f", schedule {t['rule']} {t['expression']}{'' if t['enabled'] else ' (disabled)'}"
                         for t in f["schedules"])
        streams = [f"{t['table']} stream ({t['starting_position']}, batch {t['batch_size']}, "
                   f"{len(t['filters'])} filter{'' if len(t['filters']) == 1 else 's'})" for t in f["stream_triggers"]]
        print(f"  function {f['logical_id']:27} binary {f['binary']}, {len(f['http_routes'])} routes, "
              f"triggers: {', '.join([t['queue'] for t in f['sqs_triggers']] + streams) or 'none'}{timers}")
    print(f"  development JWT key {dev_jwt['private_key']} (RS256, issuer {dev_jwt['issuer']},"
          f" audience {dev_jwt['audience']}); a token: make token SUB=<you> [ADMIN=1]")
    print(f"  wrote {wiring_path} and {(args.local_dir / 'stack.env').resolve()}"
          f" in {time.monotonic() - started:.1f} s\n", flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ProvisionError as e:
        print(f"\nprovision: ERROR: {e}\n", file=sys.stderr)
        sys.exit(1)
    except (ClientError, BotoCoreError) as e:
        print(f"\nprovision: ERROR talking to the local AWS endpoints: {e}\n", file=sys.stderr)
        sys.exit(1)
