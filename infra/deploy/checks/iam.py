#!/usr/bin/env python3
"""Least privilege, checked: every function's IAM policy names only the actions its code calls,
on exact resources. Run by `make check-infra` (and so by `make test`); exits 1 on any finding.

Reads infra/template.yaml after SAM's transform (what CloudFormation is given), so a policy SAM
would add - a generated role with AWSLambdaBasicExecutionRole, a policy template - is seen too.
For each AWS::Lambda::Function:

  IAM001  an action with a wildcard (`dynamodb:*`, `sqs:Get*`), or NotAction
  IAM002  a resource with a wildcard, or NotResource - except the documented exceptions below
  IAM003  an action the function's code never calls (infra/deploy/checks/code_model.py reads its crate
          and the shared/ code it reaches) and that the platform does not need for it
  IAM004  a resource of the wrong kind for the action (a table ARN given to sqs:SendMessage, a
          queue's Ref - its URL - where an ARN belongs)
  IAM005  a role the check cannot read: not an AWS::IAM::Role of this template, a managed policy
          (its content is not in the template), an AWS::IAM::Policy attached from outside
  IAM006  a role shared by two functions (each would get the other's permissions)
  IAM007  events:PutEvents that lets the function put on the bus an event its code does not
          publish: a statement without `StringEquals` on both `events:source` and
          `events:detail-type`, or one whose sources and detail-types allow a pair the
          function's code does not publish (another function's events, or a source with
          another source's type). What the code publishes is what it declares to its
          EventBridgePublisher, which refuses anything else (code_model.py)
  IAM008  an event the function's code publishes that no PutEvents statement of its role
          allows: the call would be refused (AccessDenied) in AWS
  IAM009  the bus's own policy: no Deny of `events:PutEvents` of paysaga's sources for every
          principal but those it names (`ArnNotEquals` on `aws:PrincipalArn`), or one naming
          other roles than exactly those of the functions whose code publishes (an IAM policy
          elsewhere in the account could then put paysaga's events on the bus, or a function
          would be refused its own)

`infra/deploy/checks/iam.py --self-test` runs the check on infra/deploy/checks/fixtures/iam-broken.yaml and
fails unless each finding above fires there: a check that cannot fail is no check.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import code_model  # noqa: E402
import template_model as tm  # noqa: E402

# ----------------------------------------------------------------------------- exceptions
# Wildcards the check allows, each because AWS leaves no narrower choice:
#
# 1. X-Ray: xray:PutTraceSegments and xray:PutTelemetryRecords define no resource type
#    ("Actions defined by AWS X-Ray" in the Service Authorization Reference lists none for them),
#    so `Resource: "*"` is the only resource they accept. Allowed for exactly these two actions,
#    and only for a function whose tracing is Active.
XRAY_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
# 2. CloudWatch Logs: Lambda writes to streams it names at run time (`2026/11/26/[$LATEST]<id>`),
#    so the streams cannot be named in advance. The resource is the function's own log group's
#    ARN as CloudFormation returns it (`!GetAtt <LogGroup>.Arn` is `…:log-group:<name>:*`): the
#    group and its streams, nothing else. Allowed for exactly these two actions, and only on the
#    log group the function's LoggingConfig names. No logs:CreateLogGroup: the template creates it.
LOG_ACTIONS = {"logs:CreateLogStream", "logs:PutLogEvents"}

# What the platform calls for a function, beyond its code:
# - an SQS trigger (event source mapping) polls with the function's role: AWS's
#   AWSLambdaSQSQueueExecutionRole grants ReceiveMessage, DeleteMessage and GetQueueAttributes;
#   ChangeMessageVisibility is allowed too (batch item failures may be returned to the queue).
#   Only on the function's trigger queues.
TRIGGER_ACTIONS = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
                   "sqs:ChangeMessageVisibility"}
# - a DynamoDB Streams trigger reads the stream with the function's role: AWS's
#   AWSLambdaDynamoDBExecutionRole grants these four. Only on the streams of the function's
#   trigger tables (`!GetAtt <Table>.StreamArn`).
STREAM_TRIGGER_ACTIONS = {"dynamodb:DescribeStream", "dynamodb:GetRecords",
                          "dynamodb:GetShardIterator", "dynamodb:ListStreams"}
# - an asynchronous invocation's destination (EventInvokeConfig DestinationConfig): Lambda sends
#   the invocation record with the function's role, sqs:SendMessage on a queue destination.
#   Only on the function's own destinations.
DESTINATION_ACTIONS = {"sqs:SendMessage"}
# - an operation AWS authorises with further actions (SQS Developer Guide, "Permissions for
#   message move tasks": the caller needs these on the source and destination queues).
IMPLIED_ACTIONS = {
    "sqs:StartMessageMoveTask": {"sqs:ReceiveMessage", "sqs:DeleteMessage",
                                 "sqs:GetQueueAttributes", "sqs:SendMessage"},
}

# Resource kinds: the template resource types whose ARN an action of a service takes.
ARN_TYPES = {
    "dynamodb": {"AWS::DynamoDB::Table"},
    "sqs": {"AWS::SQS::Queue"},
    "events": {"AWS::Events::EventBus", "AWS::Events::Rule"},
    "logs": {"AWS::Logs::LogGroup"},
}
# Resource types whose Ref is their ARN (for the others Ref is a name or a URL).
REF_IS_ARN = {"AWS::Events::Rule", "AWS::IAM::ManagedPolicy", "AWS::SNS::Topic"}


@dataclass(frozen=True)
class Finding:
    code: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.code} {self.where}: {self.message}"


@dataclass
class Grant:
    role: str
    sid: str
    actions: list[str]
    resources: list[Any]
    condition: dict = field(default_factory=dict)

    def event_pairs(self) -> set[tuple[str, str]] | None:
        """The (source, detail-type) pairs a PutEvents grant allows: every source of its
        `StringEquals` `events:source` with every detail-type of its `events:detail-type`;
        None when it does not restrict both (it allows any event)."""
        equals = {key.lower(): value for key, value in self.condition.get("StringEquals", {}).items()}
        sources, types = equals.get("events:source"), equals.get("events:detail-type")
        if sources is None or types is None or set(self.condition) != {"StringEquals"}:
            return None
        return {(str(source), str(kind)) for source in tm.as_list(sources) for kind in tm.as_list(types)}


def statements_of(role_lid: str, role: dict, resources: dict, findings: list[Finding]) -> list[Grant]:
    props = role.get("Properties", {})
    grants = []
    if props.get("ManagedPolicyArns"):
        findings.append(Finding("IAM005", role_lid, "managed policies "
                                f"{tm.dumps(props['ManagedPolicyArns'])}: their actions are not in the "
                                "template (SAM adds them to a role it generates; give the function an explicit Role)"))
    policies = [(p.get("PolicyName", "?"), p.get("PolicyDocument", {})) for p in props.get("Policies", [])]
    for lid, res in resources.items():
        if res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy") and \
                role_lid in tm.references(res.get("Properties", {}).get("Roles", [])):
            findings.append(Finding("IAM005", role_lid, f"{lid} attaches a policy from outside the role; keep its statements in the role"))
            policies.append((lid, res["Properties"].get("PolicyDocument", {})))
    for name, doc in policies:
        for index, st in enumerate(tm.as_list(doc.get("Statement", []))):
            where = f"{role_lid}/{name}/{st.get('Sid', index)}"
            if st.get("Effect") != "Allow":
                continue
            for negated in ("NotAction", "NotResource"):
                if negated in st:
                    findings.append(Finding("IAM001" if negated == "NotAction" else "IAM002", where,
                                            f"{negated} grants everything but what it names"))
            grants.append(Grant(role_lid, where, [str(a) for a in tm.as_list(st.get("Action", []))],
                                tm.as_list(st.get("Resource", [])), st.get("Condition", {})))
    return grants


def resource_kind(value: Any, resources: dict, parameters: dict) -> tuple[str | None, str | None, bool]:
    """(logical id it names, its resource type or None, whether the value is an ARN)."""
    if (g := tm.getatt(value)) is not None:
        lid, attr = g
        kind = resources.get(lid, {}).get("Type")
        return lid, kind, attr in ("Arn", "StreamArn")
    if (r := tm.ref(value)) is not None:
        kind = resources.get(r, {}).get("Type")
        return r, kind, kind in REF_IS_ARN or (r in parameters)
    return None, None, True


def arn_service(value: Any) -> str | None:
    text = value if isinstance(value, str) else tm.sub_text(value)
    if text is None:
        return None
    m = re.match(r"arn:[^:]*:([^:]*):", re.sub(r"\$\{[^}]*\}", "X", text))
    return m.group(1) if m else None


def getatt_roles(value: Any, resources: dict) -> set[str]:
    """The roles of this template whose ARN (`Fn::GetAtt <role>.Arn`) appears anywhere in
    `value` (through `Fn::Join`, `Fn::Split`, lists)."""
    found: set[str] = set()
    if isinstance(value, dict):
        att = tm.getatt(value)
        if att and resources.get(att[0], {}).get("Type") == "AWS::IAM::Role":
            found.add(att[0])
        for inner in value.values():
            found |= getatt_roles(inner, resources)
    elif isinstance(value, list):
        for inner in value:
            found |= getatt_roles(inner, resources)
    return found


def check_bus_policy(resources: dict, publishers: set[str]) -> list[Finding]:
    """IAM009: the bus lets through paysaga's events from exactly the publishing roles."""
    findings: list[Finding] = []
    denies = {}
    for lid, res in resources.items():
        if res["Type"] != "AWS::Events::EventBusPolicy":
            continue
        statement = res["Properties"].get("Statement", {})
        condition = statement.get("Condition", {})
        if statement.get("Effect") == "Deny" and "aws:PrincipalArn" in condition.get("ArnNotEquals", {}):
            denies[lid] = getatt_roles(condition["ArnNotEquals"]["aws:PrincipalArn"], resources)
    buses = [lid for lid, res in resources.items() if res["Type"] == "AWS::Events::EventBus"]
    if publishers and buses and not denies:
        findings.append(Finding("IAM009", buses[0], "no bus policy denies PutEvents to principals other "
                                "than paysaga's publishers: any role of the account allowed PutEvents "
                                "could put paysaga's events on it"))
    for lid, allowed in sorted(denies.items()):
        for role in sorted(allowed - publishers):
            findings.append(Finding("IAM009", lid, f"lets {role} through, whose function publishes nothing"))
        for role in sorted(publishers - allowed):
            findings.append(Finding("IAM009", lid, f"refuses {role}, whose function publishes"))
    return findings


def check(template: dict, notes: list[str] | None = None) -> list[Finding]:
    findings: list[Finding] = []
    written = tm.functions(template)
    cfn = tm.transformed(template)
    resources = cfn["Resources"]
    parameters = cfn.get("Parameters", {})
    crates = code_model.function_crates()

    role_users: dict[str, list[str]] = {}
    publishing_roles: set[str] = set()
    for fn_lid, fn in resources.items():
        if fn["Type"] != "AWS::Lambda::Function":
            continue
        props = fn.get("Properties", {})
        role = tm.getatt(props.get("Role"))
        if role is None or resources.get(role[0], {}).get("Type") != "AWS::IAM::Role":
            findings.append(Finding("IAM005", fn_lid, f"Role {tm.dumps(props.get('Role'))} is not an AWS::IAM::Role of this template"))
            continue
        role_lid = role[0]
        role_users.setdefault(role_lid, []).append(fn_lid)

        binary = tm.binary_of(written.get(fn_lid, {}).get("CodeUri"))
        if binary is None or binary not in crates:
            findings.append(Finding("IAM003", fn_lid, f"no function crate builds its CodeUri's binary ({binary}); "
                                    "infra/deploy/checks/deploy.py says more"))
            continue
        facts = code_model.facts_of(crates[binary])
        called = set(facts.calls)
        for action in list(called):
            called |= IMPLIED_ACTIONS.get(action, set())
        tracing = props.get("TracingConfig", {}).get("Mode") == "Active"
        log_group = tm.ref(props.get("LoggingConfig", {}).get("LogGroup"))
        triggers = {
            tm.getatt(m["Properties"].get("EventSourceArn"))[0]
            for m in resources.values()
            if m["Type"] == "AWS::Lambda::EventSourceMapping"
            and tm.ref(m["Properties"].get("FunctionName")) == fn_lid
            and tm.getatt(m["Properties"].get("EventSourceArn"))
        }

        destinations = {
            tm.getatt(d["Destination"])[0]
            for c in resources.values()
            if c["Type"] == "AWS::Lambda::EventInvokeConfig"
            and tm.ref(c["Properties"].get("FunctionName")) == fn_lid
            for d in c["Properties"].get("DestinationConfig", {}).values()
            if tm.getatt(d.get("Destination"))
        }

        if facts.publishes:
            publishing_roles.add(role_lid)
        for unread in facts.publishes_unread:
            findings.append(Finding("IAM007", fn_lid, f"what it publishes cannot be read: {unread}"))
        published = facts.publishes or set()
        allowed_events: set[tuple[str, str]] = set()
        for grant in statements_of(role_lid, resources[role_lid], resources, []):
            if "events:PutEvents" not in grant.actions:
                continue
            where = f"{fn_lid} ({grant.sid})"
            pairs = grant.event_pairs()
            if pairs is None:
                findings.append(Finding("IAM007", where, "events:PutEvents without StringEquals on events:source "
                                        "and events:detail-type: it may put any event on the bus"))
                continue
            allowed_events |= pairs
            for source, kind in sorted(pairs - published):
                findings.append(Finding("IAM007", where, f"events:PutEvents allows {kind} from {source}, "
                                        f"which the code of {binary} does not publish"))
        for source, kind in sorted(published - allowed_events):
            if any(g.event_pairs() is None and "events:PutEvents" in g.actions
                   for g in statements_of(role_lid, resources[role_lid], resources, [])):
                break  # allowed by a grant without conditions (IAM007 says so)
            findings.append(Finding("IAM008", fn_lid, f"its code publishes {kind} from {source}; "
                                    "no events:PutEvents statement of its role allows it"))
        for grant in statements_of(role_lid, resources[role_lid], resources, findings):
            where = f"{fn_lid} ({grant.sid})"
            for action in grant.actions:
                if "*" in action or "?" in action:
                    findings.append(Finding("IAM001", where, f"action {action} has a wildcard"))
                    continue
                service = action.split(":", 1)[0]
                for resource in grant.resources:
                    lid, kind, is_arn = resource_kind(resource, resources, parameters)
                    shown = tm.dumps(resource)
                    # wildcards
                    literal = resource if isinstance(resource, str) else tm.sub_text(resource)
                    if literal is not None and ("*" in literal or "?" in literal):
                        if not (literal == "*" and action in XRAY_ACTIONS and tracing):
                            findings.append(Finding("IAM002", where, f"{action} on {shown}: a wildcard resource"))
                        continue
                    if kind == "AWS::Logs::LogGroup":  # its Arn ends in :* (its streams)
                        if action not in LOG_ACTIONS or lid != log_group:
                            findings.append(Finding("IAM002", where, f"{action} on {shown}: a log group's ARN covers "
                                                    "all its streams; allowed only for logs:CreateLogStream/PutLogEvents "
                                                    "on the function's own log group"))
                        continue
                    # kind
                    expected = ARN_TYPES.get(service)
                    if lid is not None and not is_arn:
                        findings.append(Finding("IAM004", where, f"{action} on {shown}: not an ARN (a Ref of {kind} is its name or URL)"))
                    elif expected and kind is not None and kind not in expected:
                        findings.append(Finding("IAM004", where, f"{action} on {shown}: a {kind}, not one of {', '.join(sorted(expected))}"))
                    elif expected and lid is None and arn_service(resource) not in (service, None):
                        findings.append(Finding("IAM004", where, f"{action} on {shown}: an ARN of {arn_service(resource)}"))
                    # called?
                    on_a_stream = (tm.getatt(resource) or (None, None))[1] == "StreamArn"
                    if on_a_stream and action not in STREAM_TRIGGER_ACTIONS:
                        findings.append(Finding("IAM004", where, f"{action} on {shown}: a table's stream"))
                    if action in STREAM_TRIGGER_ACTIONS and not on_a_stream:
                        findings.append(Finding("IAM004", where, f"{action} on {shown}: not a table's stream"))
                    justified = (
                        (action in called and not on_a_stream)
                        or (action in TRIGGER_ACTIONS and lid in triggers)
                        or (action in STREAM_TRIGGER_ACTIONS and on_a_stream and lid in triggers)
                        or (action in DESTINATION_ACTIONS and lid in destinations)
                        or (action in XRAY_ACTIONS and tracing)
                    )
                    if not justified:
                        why = " (it is not this function's trigger queue)" if action in TRIGGER_ACTIONS else ""
                        findings.append(Finding("IAM003", where, f"{action} on {shown}: the code of {binary} never calls it{why}"))
        ungranted = sorted(called - {a for g in statements_of(role_lid, resources[role_lid], resources, [])
                                     for a in g.actions})
        if ungranted and notes is not None:
            notes.append(f"{fn_lid}: its code reaches {', '.join(ungranted)}, not granted (fine where that "
                         "path of a shared adapter is not this function's: reachability is per item)")
    for role_lid, users in role_users.items():
        if len(users) > 1:
            findings.append(Finding("IAM006", role_lid, f"shared by {', '.join(users)}"))
    findings += check_bus_policy(resources, publishing_roles)
    # de-duplicate (a statement with several resources repeats an action's finding)
    return list(dict.fromkeys(findings))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("template", nargs="?", type=Path, default=tm.TEMPLATE)
    parser.add_argument("--self-test", action="store_true",
                        help="check infra/deploy/checks/fixtures/iam-broken.yaml: every finding code must fire")
    args = parser.parse_args()
    if args.self_test:
        fixture = Path(__file__).resolve().parent / "fixtures" / "iam-broken.yaml"
        findings = check(tm.load(fixture))
        # (finding, where it must fire): each broken statement of the fixture, by its Sid
        expected = {("IAM001", "/ActionWildcard)"), ("IAM002", "/ResourceWildcard)"),
                    ("IAM002", "/IndexWildcard)"), ("IAM002", "/SomeoneElsesLogGroup)"),
                    ("IAM003", "/NeverCalled)"), ("IAM003", "SharedRoleFunction (GoodRole/good/2)"),
                    ("IAM004", "/WrongKind)"), ("IAM004", "/NotAnArn)"),
                    ("IAM005", "SamRoleFunctionRole"), ("IAM006", "GoodRole"),
                    ("IAM007", "/NotAnArn)"), ("IAM007", "/AnotherFunctionsEvents)"),
                    ("IAM008", "NarrowPublisherFunction"),
                    ("IAM009", "HalfOpenBusPolicy")}
        missing = {(code, where) for code, where in expected
                   if not any(f.code == code and f.where.endswith(where) for f in findings)}
        for f in findings:
            print(f"  {f}")
        if missing:
            print(f"iam: self-test FAILED: did not fire on {fixture}: {sorted(missing)}", file=sys.stderr)
            return 1
        # and the fixture's one good function passes
        good = [f for f in findings if f.where.startswith("GoodFunction")]
        if good:
            print(f"iam: self-test FAILED: the fixture's GoodFunction has findings: {good}", file=sys.stderr)
            return 1
        print(f"iam: self-test passed: IAM001-IAM009 fire on each of the {len(expected)} broken places "
              f"of {fixture.name}; its GoodFunction passes")
        return 0
    notes: list[str] = []
    findings = check(tm.load(args.template), notes)
    for note in notes:
        print(f"iam: note: {note}")
    for f in findings:
        print(f"iam: {f}", file=sys.stderr)
    if findings:
        print(f"iam: {len(findings)} finding(s) in {args.template}", file=sys.stderr)
        return 1
    print(f"iam: every function's role names only actions its code calls, on exact resources, and "
          f"may publish only the events its code does, and the bus takes paysaga's events from those roles alone ({args.template.name})")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except tm.TemplateError as error:
        print(f"iam: ERROR: {error}", file=sys.stderr)
        sys.exit(1)
