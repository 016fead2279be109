#!/usr/bin/env python3
"""The stack as AWS takes it: what the template's parameters, limits and settings let a real
account refuse or mishandle, found without one. Run by `make check-infra` (and so by
`make test`); exits 1 on any finding. (infra/deploy/checks/deploy.py checks the functions against
their code, infra/deploy/checks/iam.py their permissions.)

  S001  a queue that triggers a function may have a visibility timeout below the function's
        timeout (a parameter's MinValue counts): Lambda refuses to create the mapping
        ("Queue visibility timeout ... is less than Function timeout")
  S002  a queue's redrive policy may give up after fewer than 2 receives (a parameter's
        MinValue counts): no message is ever retried, and the payment saga, which compensates
        on a message's last receive, would compensate on its first
  S003  a name built from the stack's name (`!Sub "${AWS::StackName}-..."`) can outgrow its
        service's limit (a function or rule name 64 characters, a queue name 80, ...) for a
        stack name `make deploy` accepts; or the stack name limit the README states is not the
        one the template sets (infra/deploy/sam_deploy.py refuses longer names, computed here)
  S004  a parameter's default is a placeholder (a host under .invalid, .example, .test or
        example.com): a stack deployed without the value works for nobody; leave the default
        out, so a deploy must be given the value (make deploy refuses without it)
  S005  a function invoked asynchronously (an EventBridge rule's target, a SAM Schedule or
        EventBridgeRule event) has no EventInvokeConfig with an OnFailure destination, or its
        role may not send to that queue: a run that fails after EventBridge delivered it falls
        to Lambda's own retries and is dropped without a trace
  S006  a function run on a schedule may run twice at once (its ReservedConcurrentExecutions is
        not 1): a scheduled run overlaps a manual one
  S007  a table the stack retains (DeletionPolicy: Retain: the ledger, the payments' log, the
        audit trail, ...) is not DeletionProtectionEnabled: a DeleteTable call (by hand, from a
        script) would still drop what the stack keeps
  S008  concurrency not sized for production: an SQS trigger's MaximumConcurrency is not a
        parameter (MinValue 2 at least, MaxValue 1000 at most) with a default above AWS's least, 2;
        a function with triggers has no reserved concurrency from a parameter, or its default is
        below its triggers' defaults together (Lambda would throttle what they read); or the
        README's total of the reservations' defaults is not the template's, or leaves the default
        account quota less than the 100 unreserved executions Lambda keeps

`infra/deploy/checks/stack.py --self-test` runs the checks on infra/deploy/checks/fixtures/stack-broken.yaml
and fails unless each finding fires there.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import template_model as tm  # noqa: E402
from iam import Finding  # noqa: E402

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "stack-broken.yaml"
README = tm.ROOT / "README.md"

# SQS's own default when a queue sets no VisibilityTimeout (CloudFormation AWS::SQS::Queue).
SQS_DEFAULT_VISIBILITY_TIMEOUT = 30
# Lambda's default function timeout.
LAMBDA_DEFAULT_TIMEOUT = 3
# Receives a message needs at least: one that may fail and be retried, and the last, on which the
# saga compensates and the consumers send the failure to the DLQ with its reason
# (shared/services/src/saga.rs Delivery::is_last, shared/lambda-toolkit/src/sqs_batch.rs process_batch).
MIN_RECEIVES = 2


def lowest(value: Any, parameters: dict) -> float | None:
    """The lowest number `value` can be on deploy: itself, or the least its parameter accepts
    (MinValue, the least of AllowedValues; a Number parameter with neither accepts any)."""
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.strip().lstrip("-").isdigit()):
        return float(value)
    name = tm.ref(value)
    if name is None or name not in parameters:
        return None
    parameter = parameters[name]
    candidates = []
    if "MinValue" in parameter:
        candidates.append(float(parameter["MinValue"]))
    if "AllowedValues" in parameter:
        candidates.append(min(float(v) for v in parameter["AllowedValues"]))
    return max(candidates) if candidates else float("-inf")


def accepts(value: Any, least: float | None) -> str:
    """How a finding names what `value` may be: `parameter X accepts as few as 1`, `is 1`."""
    what = "an unknown value" if least is None else f"{least:g}"
    name = tm.ref(value)
    return f"(parameter {name}) accepts as few as {what}" if name else f"is {what}"


def sqs_triggers(template: dict) -> list[tuple[str, str, str]]:
    """(function logical id, where, queue logical id) of every SQS trigger: SAM functions'
    `Type: SQS` events and AWS::Lambda::EventSourceMappings."""
    resources = template.get("Resources", {})
    found = []
    for lid, fn in tm.functions(template).items():
        for name, event in (fn.get("Events") or {}).items():
            queue = tm.getatt(event.get("Properties", {}).get("Queue"))
            if event.get("Type") == "SQS" and queue:
                found.append((lid, f"{lid}.{name}", queue[0]))
    for lid, res in resources.items():
        if res.get("Type") != "AWS::Lambda::EventSourceMapping":
            continue
        props = res.get("Properties", {})
        source = tm.getatt(props.get("EventSourceArn"))
        function = tm.ref(props.get("FunctionName")) or (tm.getatt(props.get("FunctionName")) or [None])[0]
        if source and function:
            found.append((function, lid, source[0]))
    return [(fn, where, queue) for fn, where, queue in found
            if resources.get(queue, {}).get("Type") == "AWS::SQS::Queue"]


def timeout_of(template: dict, function: str) -> float:
    """The longest the function may run: its Timeout, or the most its parameter accepts."""
    resources = template.get("Resources", {})
    props = tm.functions(template).get(function) or resources.get(function, {}).get("Properties", {})
    timeout = props.get("Timeout", LAMBDA_DEFAULT_TIMEOUT)
    name = tm.ref(timeout)
    if name is not None:
        parameter = template.get("Parameters", {}).get(name, {})
        # Unbounded: Lambda's own limit, 900 s.
        return float(parameter.get("MaxValue", max(map(float, parameter.get("AllowedValues", [900])))))
    return float(timeout)


def check_queues(template: dict) -> list[Finding]:
    findings = []
    resources = template.get("Resources", {})
    parameters = template.get("Parameters", {})
    for function, where, queue in sqs_triggers(template):
        visibility = resources[queue].get("Properties", {}).get("VisibilityTimeout", SQS_DEFAULT_VISIBILITY_TIMEOUT)
        least = lowest(visibility, parameters)
        timeout = timeout_of(template, function)
        if least is None or least < timeout:
            findings.append(Finding("S001", where, f"{queue}'s VisibilityTimeout {accepts(visibility, least)} s, "
                                    f"below {function}'s timeout of {timeout:g} s: Lambda refuses the mapping "
                                    f"(give it {timeout:g} s at least)"))
    for lid, res in resources.items():
        if res.get("Type") != "AWS::SQS::Queue":
            continue
        policy = res.get("Properties", {}).get("RedrivePolicy")
        if not isinstance(policy, dict) or "maxReceiveCount" not in policy:
            continue
        least = lowest(policy["maxReceiveCount"], parameters)
        if least is None or least < MIN_RECEIVES:
            findings.append(Finding("S002", lid, f"maxReceiveCount {accepts(policy['maxReceiveCount'], least)}: a "
                                    f"message needs {MIN_RECEIVES} receives at least (one to retry, the last to give up on)"))
    return findings


# ----------------------------------------------------------------------------- names

# The name property of each resource type, and the most characters its service takes
# (CloudFormation resource reference, each type's Name property: "Maximum").
NAME_LIMITS = {
    "AWS::Serverless::Function": ("FunctionName", 64),
    "AWS::Lambda::Function": ("FunctionName", 64),
    "AWS::Events::Rule": ("Name", 64),
    "AWS::Events::EventBus": ("Name", 256),
    "AWS::SQS::Queue": ("QueueName", 80),
    "AWS::Logs::LogGroup": ("LogGroupName", 512),
    "AWS::DynamoDB::Table": ("TableName", 255),
    "AWS::IAM::Role": ("RoleName", 64),
    "AWS::CloudWatch::Alarm": ("AlarmName", 255),
    "AWS::CloudWatch::Dashboard": ("DashboardName", 255),
    "AWS::SNS::Topic": ("TopicName", 256),
    "AWS::Scheduler::Schedule": ("Name", 64),
    "AWS::Serverless::HttpApi": ("Name", 128),
    "AWS::ApiGatewayV2::Api": ("Name", 128),
}
# CloudFormation's own limit on a stack's name.
STACK_NAME_LIMIT = 128
# Pseudo parameters a name may hold, and their longest value.
PSEUDO_LENGTHS = {"AWS::AccountId": 12, "AWS::Partition": len("aws-iso-b"), "AWS::Region": len("ap-southeast-5"),
                  "AWS::URLSuffix": len("amazonaws.com.cn")}
# The README's statement of the limit, which S003 holds to the template.
README_LIMIT = re.compile(r"stack\s+names\s+of\s+at\s+most\s+\*\*(\d+)\s+characters\*\*")
# The README's statement of what the reservations' defaults add up to, which S008 holds to the template.
README_RESERVED = re.compile(r"the\s+defaults\s+reserve\s+\*\*(\d+)\*\*\s+concurrent\s+executions")
# Lambda's default quota of concurrent executions per account and Region, and what it keeps
# unreserved at least (Lambda Developer Guide, "Lambda quotas"; "Configuring reserved concurrency").
ACCOUNT_QUOTA = 1000
UNRESERVED_MINIMUM = 100
# What AWS takes as an SQS mapping's MaximumConcurrency (ScalingConfig).
MAXIMUM_CONCURRENCY_RANGE = (2, 1000)


@dataclass(frozen=True)
class NameBudget:
    """The longest stack name every name built from it fits with, and the name that sets it."""
    limit: int
    resource: str
    why: str


def stack_name_budget(template: dict) -> tuple[NameBudget, list[Finding]]:
    """How long the stack's name may be, from every name the template builds from it; and the
    names whose length cannot be bounded (a parameter without MaxLength in it)."""
    parameters = template.get("Parameters", {})
    budget = NameBudget(STACK_NAME_LIMIT, "the stack", f"CloudFormation takes stack names of {STACK_NAME_LIMIT} characters")
    findings = []
    for lid, res in template.get("Resources", {}).items():
        prop, limit = NAME_LIMITS.get(res.get("Type"), (None, 0))
        value = res.get("Properties", {}).get(prop) if prop else None
        if value is None:
            continue  # CloudFormation names it, within the limit
        text = value if isinstance(value, str) else tm.sub_text(value)
        if text is None or (not isinstance(value, str) and isinstance(value["Fn::Sub"], list)):
            findings.append(Finding("S003", lid, f"{prop} {tm.dumps(value)}: only a literal or a plain !Sub can be measured"))
            continue
        fixed, stack_names = 0, 0
        for literal, variable in re.findall(r"([^$]*)(?:\$\{([^}]*)\})?", text):
            fixed += len(literal)
            if not variable:
                continue
            if variable == "AWS::StackName":
                stack_names += 1
            elif variable in PSEUDO_LENGTHS:
                fixed += PSEUDO_LENGTHS[variable]
            elif variable in parameters and "MaxLength" in parameters[variable]:
                fixed += int(parameters[variable]["MaxLength"])
            else:
                findings.append(Finding("S003", lid, f"{prop} {text!r}: the length of ${{{variable}}} is not bounded "
                                        "(a parameter needs a MaxLength)"))
        if stack_names == 0:
            if fixed > limit:
                findings.append(Finding("S003", lid, f"{prop} {text!r} is {fixed} characters, over the {limit} it may have"))
            continue
        room = (limit - fixed) // stack_names
        if room < budget.limit:
            budget = NameBudget(room, lid, f"{prop} {text!r} may have {limit} characters")
    return budget, findings


def documented_limit(readme: str) -> int | None:
    m = README_LIMIT.search(readme)
    return int(m.group(1)) if m else None


def check_names(template: dict, readme: str, longest_default_stack: int) -> list[Finding]:
    """S003: every name fits for every stack name up to the budget, which the README states and
    which the longest default stack name (`paysaga-<stage>` of the longest stage) fits."""
    budget, findings = stack_name_budget(template)
    stated = documented_limit(readme)
    if stated != budget.limit:
        says = ("states no stack name limit (a sentence with \"stack names of at most **N characters**\")"
                if stated is None else f"states stack names of at most {stated} characters")
        findings.append(Finding("S003", "README.md", f"{says}; the template allows {budget.limit} "
                                f"({budget.resource}: {budget.why})"))
    if longest_default_stack > budget.limit:
        findings.append(Finding("S003", budget.resource, f"{budget.why}: a stack name of {budget.limit} characters at "
                                f"most, but the longest stage's default stack name has {longest_default_stack}"))
    return findings


def longest_default_stack(template: dict) -> int:
    """`paysaga-<stage>` (the Makefile's STACK) for the longest Stage the template accepts."""
    stage = template.get("Parameters", {}).get("Stage", {})
    return len("paysaga-") + int(stage.get("MaxLength", 0))


# ----------------------------------------------------------------------------- parameters

PLACEHOLDER = re.compile(r"(?:[\w-]+\.)*(?:[\w-]+\.(?:invalid|example|test|localhost)|example\.(?:com|net|org))\b", re.I)


def check_parameters(template: dict) -> list[Finding]:
    findings = []
    for name, parameter in template.get("Parameters", {}).items():
        default = parameter.get("Default")
        if isinstance(default, str) and (m := PLACEHOLDER.search(default)):
            findings.append(Finding("S004", name, f"its default {default!r} is a placeholder ({m.group(0)}): a stack "
                                    "deployed without a value works for nobody; leave the Default out"))
    return findings


# ----------------------------------------------------------------------------- asynchronous runs

# SAM events through which Lambda invokes a function asynchronously (Lambda Developer Guide,
# "Invoking a Lambda function asynchronously": EventBridge, SNS, S3, ...).
ASYNC_EVENTS = {"Schedule", "ScheduleV2", "EventBridgeRule", "CloudWatchEvent", "SNS", "S3"}
SCHEDULE_EVENTS = {"Schedule", "ScheduleV2"}


def rule_targets(template: dict) -> list[tuple[str, str, bool]]:
    """(rule, function, whether the rule is a schedule) for each rule target that is a function
    of the template (its Arn `!GetAtt <function>.Arn`)."""
    resources = template.get("Resources", {})
    found = []
    for lid, res in resources.items():
        if res.get("Type") != "AWS::Events::Rule":
            continue
        props = res.get("Properties", {})
        for target in props.get("Targets", []):
            arn = tm.getatt(target.get("Arn"))
            if arn and arn[1] == "Arn" and resources.get(arn[0], {}).get("Type") in (
                    "AWS::Serverless::Function", "AWS::Lambda::Function"):
                found.append((lid, arn[0], "ScheduleExpression" in props))
    return found


def invoke_config(template: dict, function: str) -> dict | None:
    """The function's EventInvokeConfig: SAM's property, or an AWS::Lambda::EventInvokeConfig."""
    resources = template.get("Resources", {})
    own = tm.functions(template).get(function, {}).get("EventInvokeConfig")  # Globals merged
    if own is not None:
        return own
    for res in resources.values():
        props = res.get("Properties", {})
        if res.get("Type") == "AWS::Lambda::EventInvokeConfig" and function in tm.references(props.get("FunctionName")):
            return props
    return None


def role_sends_to(template: dict, function: str, queue: str) -> bool:
    """Whether the function's role (an AWS::IAM::Role of the template) allows sqs:SendMessage on
    `queue`'s ARN."""
    resources = template.get("Resources", {})
    role = tm.getatt(resources.get(function, {}).get("Properties", {}).get("Role"))
    if role is None:
        return False
    for policy in resources.get(role[0], {}).get("Properties", {}).get("Policies", []):
        for statement in tm.as_list(policy.get("PolicyDocument", {}).get("Statement", [])):
            if (statement.get("Effect") == "Allow" and "sqs:SendMessage" in tm.as_list(statement.get("Action", []))
                    and any(tm.getatt(r) == (queue, "Arn") for r in tm.as_list(statement.get("Resource", [])))):
                return True
    return False


def check_async(template: dict) -> list[Finding]:
    resources = template.get("Resources", {})
    asynchronous: dict[str, str] = {}  # function -> what invokes it
    scheduled: dict[str, str] = {}
    for rule, function, schedule in rule_targets(template):
        asynchronous.setdefault(function, f"rule {rule}")
        if schedule:
            scheduled.setdefault(function, f"rule {rule}")
    for lid, fn in tm.functions(template).items():
        for name, event in (fn.get("Events") or {}).items():
            if event.get("Type") in ASYNC_EVENTS:
                asynchronous.setdefault(lid, f"its {name} event")
            if event.get("Type") in SCHEDULE_EVENTS:
                scheduled.setdefault(lid, f"its {name} event")
    findings = []
    for function, by in sorted(asynchronous.items()):
        config = invoke_config(template, function) or {}
        on_failure = config.get("DestinationConfig", {}).get("OnFailure", {})
        destination = tm.getatt(on_failure.get("Destination"))
        if not on_failure:
            findings.append(Finding("S005", function, f"invoked asynchronously ({by}) with no EventInvokeConfig "
                                    "OnFailure destination: a failed run is retried by Lambda, then dropped"))
        elif (destination and resources.get(destination[0], {}).get("Type") == "AWS::SQS::Queue"
              and not role_sends_to(template, function, destination[0])):
            findings.append(Finding("S005", function, f"its failed runs go to {destination[0]}, but its role may not "
                                    "sqs:SendMessage there (Lambda sends the record with the function's role)"))
    for function, by in sorted(scheduled.items()):
        props = tm.functions(template).get(function) or resources.get(function, {}).get("Properties", {})
        reserved = props.get("ReservedConcurrentExecutions")
        if str(reserved) != "1":
            findings.append(Finding("S006", function, f"run on a schedule ({by}) with ReservedConcurrentExecutions "
                                    f"{tm.dumps(reserved) if reserved is not None else 'unset'}: a scheduled run may "
                                    "overlap a manual one (give it 1)"))
    return findings


# ----------------------------------------------------------------------------- tables

def check_tables(template: dict) -> list[Finding]:
    return [
        Finding("S007", lid, "retained on stack deletion, but not DeletionProtectionEnabled: a DeleteTable call "
                "still drops it")
        for lid, res in template.get("Resources", {}).items()
        if res.get("Type") == "AWS::DynamoDB::Table" and res.get("DeletionPolicy") == "Retain"
        and res.get("Properties", {}).get("DeletionProtectionEnabled") not in (True, "true", "True")
    ]


# ----------------------------------------------------------------------------- concurrency

def default_of(value: Any, parameters: dict) -> int | None:
    """A literal number, or its parameter's default."""
    name = tm.ref(value)
    if name is not None:
        value = parameters.get(name, {}).get("Default")
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def reserved_total(template: dict) -> int:
    """What the functions' reserved concurrency adds up to with the parameters' defaults."""
    parameters = template.get("Parameters", {})
    return sum(default_of(fn.get("ReservedConcurrentExecutions"), parameters) or 0
               for fn in tm.functions(template).values())


def documented_reserved(readme: str) -> int | None:
    m = README_RESERVED.search(readme)
    return int(m.group(1)) if m else None


def check_concurrency(template: dict, readme: str) -> list[Finding]:
    findings = []
    parameters = template.get("Parameters", {})
    resources = template.get("Resources", {})
    least, most = MAXIMUM_CONCURRENCY_RANGE
    mappings: dict[str, int] = {}  # function -> its triggers' MaximumConcurrency defaults together
    for function, where, _queue in sqs_triggers(template):
        if where in resources:  # an AWS::Lambda::EventSourceMapping
            scaling = resources[where].get("Properties", {}).get("ScalingConfig", {})
        else:
            event = where.split(".", 1)[1]
            scaling = tm.functions(template)[function]["Events"][event].get("Properties", {}).get("ScalingConfig", {})
        value = scaling.get("MaximumConcurrency")
        name = tm.ref(value)
        parameter = parameters.get(name, {}) if name else {}
        if not parameter:
            findings.append(Finding("S008", where, f"MaximumConcurrency {tm.dumps(value) if value is not None else 'unset'}: "
                                    "give it a template parameter, sized for production"))
        else:
            default = default_of(value, parameters) or 0
            if not (int(parameter.get("MinValue", 0)) >= least and int(parameter.get("MaxValue", most + 1)) <= most
                    and default > least):
                findings.append(Finding("S008", where, f"MaximumConcurrency parameter {name} (default {default}, "
                                        f"MinValue {parameter.get('MinValue')}, MaxValue {parameter.get('MaxValue')}): "
                                        f"AWS takes {least}-{most}; the default must be a production one, above {least}"))
        mappings[function] = mappings.get(function, 0) + (default_of(value, parameters) or least)
    for function, together in sorted(mappings.items()):
        reserved = (tm.functions(template).get(function) or resources.get(function, {}).get("Properties", {})
                    ).get("ReservedConcurrentExecutions")
        if tm.ref(reserved) not in parameters:
            findings.append(Finding("S008", function, f"ReservedConcurrentExecutions {tm.dumps(reserved) if reserved is not None else 'unset'}: "
                                    "a function with SQS triggers reserves their instances, from a template parameter"))
        elif (default_of(reserved, parameters) or 0) < together:
            findings.append(Finding("S008", function, f"reserves {default_of(reserved, parameters)} by default, fewer "
                                    f"than its triggers' {together} together: Lambda throttles what they read"))
    total = reserved_total(template)
    stated = documented_reserved(readme)
    if stated != total:
        says = ("states no total of the reservations (a sentence with \"the defaults reserve **N** concurrent "
                "executions\")" if stated is None else f"states the defaults reserve {stated} concurrent executions")
        findings.append(Finding("S008", "README.md", f"{says}; the template's add up to {total}"))
    if total > ACCOUNT_QUOTA - UNRESERVED_MINIMUM:
        findings.append(Finding("S008", "template", f"the defaults reserve {total} concurrent executions: more than "
                                f"the default quota of {ACCOUNT_QUOTA} leaves with the {UNRESERVED_MINIMUM} Lambda keeps"))
    return findings


def check(template: dict, readme: str | None = None) -> list[Finding]:
    readme = README.read_text() if readme is None else readme
    return (check_queues(template) + check_names(template, readme, longest_default_stack(template))
            + check_parameters(template) + check_async(template) + check_tables(template)
            + check_concurrency(template, readme))


# (code, where it must fire) on the fixture
EXPECTED = {
    ("S001", "ShortFunction.Messages"), ("S001", "Mapping"), ("S001", "DefaultFunction.Messages"),
    ("S002", "Queue"), ("S002", "LiteralQueue"),
    ("S003", "LongNamedFunction"), ("S003", "README.md"), ("S003", "UnboundedRule"), ("S003", "FixedQueue"),
    ("S004", "Issuer"), ("S004", "ProcessorUrl"),
    ("S005", "ScheduledFunction"), ("S005", "PatternTargetFunction"), ("S006", "ScheduledFunction"),
    ("S006", "SamScheduledFunction"), ("S007", "LedgerTable"),
    ("S008", "LiteralConcurrencyFunction.Messages"), ("S008", "MinimumConcurrencyFunction.Messages"),
    ("S008", "UnreservedFunction"), ("S008", "TwoQueuesFunction"), ("S008", "README.md"), ("S008", "template"),
}
# What the fixture's README would state: the limit the real template sets, not the fixture's.
FIXTURE_README = "... stack names of at most **47 characters** ..."


def self_test() -> int:
    findings = check(tm.load(FIXTURE), FIXTURE_README)
    for f in findings:
        print(f"  {f}")
    missing = sorted((code, where) for code, where in EXPECTED
                     if not any(f.code == code and f.where == where for f in findings))
    unexpected = [f for f in findings if (f.code, f.where) not in EXPECTED]
    if missing or unexpected:
        print(f"stack: self-test FAILED on {FIXTURE.name}: did not fire: {missing}; fired where it must not: "
              f"{[str(f) for f in unexpected]}", file=sys.stderr)
        return 1
    codes = sorted({code for code, _ in EXPECTED})
    print(f"stack: self-test passed: {codes[0]}-{codes[-1]} fire on each of the {len(EXPECTED)} broken places "
          f"of {FIXTURE.name}, and nowhere else")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("template", nargs="?", type=Path, default=tm.TEMPLATE)
    parser.add_argument("--self-test", action="store_true",
                        help=f"check {FIXTURE.relative_to(tm.ROOT)}: every finding must fire")
    args = parser.parse_args()
    if args.self_test:
        return self_test()
    findings = check(tm.load(args.template))
    for f in findings:
        print(f"stack: {f}", file=sys.stderr)
    if findings:
        print(f"stack: {len(findings)} finding(s) in {args.template}", file=sys.stderr)
        return 1
    budget, _ = stack_name_budget(tm.load(args.template))
    print("stack: queue visibility timeouts cover their functions' timeouts; every redrive policy retries; "
          f"every name fits for stack names of up to {budget.limit} characters ({budget.resource}), as the README "
          "states; no placeholder defaults; every asynchronously invoked function keeps its failed runs, every "
          "scheduled one runs once at a time; every retained table is protected from deletion; concurrency from "
          f"parameters with production defaults, reserving {reserved_total(tm.load(args.template))} as the README states")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except tm.TemplateError as error:
        print(f"stack: ERROR: {error}", file=sys.stderr)
        sys.exit(1)
