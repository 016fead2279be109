#!/usr/bin/env python3
"""The stack as AWS takes it: what the template's parameters, limits and settings let a real
account refuse or mishandle, found without one. Run by `make check-infra` (and so by
`make test`); exits 1 on any finding. (infra/checks/deploy.py checks the functions against
their code, infra/checks/iam.py their permissions.)

  S001  a queue that triggers a function may have a visibility timeout below the function's
        timeout (a parameter's MinValue counts): Lambda refuses to create the mapping
        ("Queue visibility timeout ... is less than Function timeout")
  S002  a queue's redrive policy may give up after fewer than 2 receives (a parameter's
        MinValue counts): no message is ever retried, and the payment saga, which compensates
        on a message's last receive, would compensate on its first

`infra/checks/stack.py --self-test` runs the checks on infra/checks/fixtures/stack-broken.yaml
and fails unless each finding fires there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import template_model as tm  # noqa: E402
from iam import Finding  # noqa: E402

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "stack-broken.yaml"

# SQS's own default when a queue sets no VisibilityTimeout (CloudFormation AWS::SQS::Queue).
SQS_DEFAULT_VISIBILITY_TIMEOUT = 30
# Lambda's default function timeout.
LAMBDA_DEFAULT_TIMEOUT = 3
# Receives a message needs at least: one that may fail and be retried, and the last, on which the
# saga compensates and the consumers send the failure to the DLQ with its reason
# (shared/src/service/saga.rs Delivery::is_last, shared/src/sqs_batch.rs process_batch).
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


def timeout_of(template: dict, function: str) -> int:
    resources = template.get("Resources", {})
    props = tm.functions(template).get(function) or resources.get(function, {}).get("Properties", {})
    return int(props.get("Timeout", LAMBDA_DEFAULT_TIMEOUT))


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
                                    f"below {function}'s timeout of {timeout} s: Lambda refuses the mapping "
                                    f"(give it {timeout} s at least)"))
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


def check(template: dict) -> list[Finding]:
    return check_queues(template)


# (code, where it must fire) on the fixture
EXPECTED = {
    ("S001", "ShortFunction.Messages"), ("S001", "Mapping"), ("S001", "DefaultFunction.Messages"),
    ("S002", "Queue"), ("S002", "LiteralQueue"),
}


def self_test() -> int:
    findings = check(tm.load(FIXTURE))
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
    print("stack: queue visibility timeouts cover their functions' timeouts; every redrive policy retries")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except tm.TemplateError as error:
        print(f"stack: ERROR: {error}", file=sys.stderr)
        sys.exit(1)
