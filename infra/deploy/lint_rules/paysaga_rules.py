"""paysaga's own cfn-lint rules: the messaging contracts every template change must keep.

Run by `make lint-infra` (cfn-lint --append-rules infra/deploy/lint_rules). The rules see the template
as written (SAM resources untransformed), so SQS triggers are read both from SAM functions'
`Events` and from plain `AWS::Lambda::EventSourceMapping`s.
"""

from __future__ import annotations

import re
from typing import Any

from cfnlint.rules import CloudFormationLintRule, RuleMatch


def _arn_target(value: Any) -> str | None:
    """The logical id in `!GetAtt X.Arn` / `{"Fn::GetAtt": ["X", "Arn"]}`, if that is what value is."""
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        if isinstance(target, str):
            target = target.split(".", 1)
        if isinstance(target, list) and len(target) == 2 and target[1] == "Arn":
            return str(target[0])
    return None


def _referenced(value: Any) -> set[str]:
    """Logical ids a value names through Ref, Fn::GetAtt or Fn::Sub's ${...}."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, argument in value.items():
            if key == "Ref" and isinstance(argument, str):
                found.add(argument)
            elif key == "Fn::GetAtt":
                target = argument.split(".", 1) if isinstance(argument, str) else argument
                found.add(str(target[0]))
            elif key == "Fn::Sub":
                text = argument[0] if isinstance(argument, list) else argument
                found |= {name.split(".", 1)[0] for name in re.findall(r"\$\{([^!}][^}]*)\}", str(text))}
                if isinstance(argument, list) and len(argument) > 1:
                    found |= _referenced(argument[1])
            else:
                found |= _referenced(argument)
    elif isinstance(value, list):
        for item in value:
            found |= _referenced(item)
    return found


def _dead_letter_queues(cfn) -> set[str]:
    """Queues some queue's redrive policy, some rule target or some stream trigger sends dead
    letters to."""
    dlqs = set()
    for resource in cfn.get_resources(["AWS::SQS::Queue"]).values():
        policy = resource.get("Properties", {}).get("RedrivePolicy", {})
        if isinstance(policy, dict) and (target := _arn_target(policy.get("deadLetterTargetArn"))):
            dlqs.add(target)
    for resource in cfn.get_resources(["AWS::Events::Rule"]).values():
        for target in resource.get("Properties", {}).get("Targets", []):
            if target := _arn_target(target.get("DeadLetterConfig", {}).get("Arn")):
                dlqs.add(target)
    # A stream trigger's on-failure destination: where what it gave up on goes (SAM's event, or
    # the event source mapping SAM makes of it).
    mappings = [
        resource.get("Properties", {})
        for resource in cfn.get_resources(["AWS::Lambda::EventSourceMapping"]).values()
    ]
    for function in cfn.get_resources(["AWS::Serverless::Function"]).values():
        for event in function.get("Properties", {}).get("Events", {}).values():
            mappings.append(event.get("Properties", {}))
    for mapping in mappings:
        on_failure = mapping.get("DestinationConfig", {}).get("OnFailure", {})
        if target := _arn_target(on_failure.get("Destination")):
            dlqs.add(target)
    return dlqs


class QueuesHaveDeadLetterQueues(CloudFormationLintRule):
    """Nothing a queue gives up on is lost: every queue that is not itself a DLQ has one."""

    id = "E9101"
    shortdesc = "SQS queue without a dead-letter queue"
    description = "Every SQS queue that is not a dead-letter queue needs a RedrivePolicy to one"
    source_url = "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dead-letter-queues.html"
    tags = ["paysaga", "sqs"]

    def match(self, cfn):
        dlqs = _dead_letter_queues(cfn)
        matches = []
        for name, resource in cfn.get_resources(["AWS::SQS::Queue"]).items():
            redrive = resource.get("Properties", {}).get("RedrivePolicy")
            if name not in dlqs and not redrive:
                matches.append(RuleMatch(["Resources", name], f"queue {name} has no RedrivePolicy to a dead-letter queue"))
        return matches


class RuleTargetsHaveDeadLettersAndRetries(CloudFormationLintRule):
    """An event EventBridge cannot deliver is kept: every target has a DLQ and a retry policy."""

    id = "E9102"
    shortdesc = "EventBridge rule target without a DLQ or retry policy"
    description = "Every EventBridge rule target needs DeadLetterConfig and RetryPolicy"
    source_url = "https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html"
    tags = ["paysaga", "events"]

    def match(self, cfn):
        matches = []
        for name, resource in cfn.get_resources(["AWS::Events::Rule"]).items():
            for index, target in enumerate(resource.get("Properties", {}).get("Targets", [])):
                for needed in ("DeadLetterConfig", "RetryPolicy"):
                    if needed not in target:
                        path = ["Resources", name, "Properties", "Targets", index]
                        matches.append(RuleMatch(path, f"rule {name} target {target.get('Id', index)} has no {needed}"))
        return matches


class SqsTriggersReportBatchItemFailures(CloudFormationLintRule):
    """One bad message never fails its batch-mates: SQS triggers report partial batch failures."""

    id = "E9103"
    shortdesc = "SQS trigger without ReportBatchItemFailures"
    description = "Every SQS event source mapping must set FunctionResponseTypes: [ReportBatchItemFailures]"
    source_url = "https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html"
    tags = ["paysaga", "lambda", "sqs"]

    def match(self, cfn):
        queues = set(cfn.get_resources(["AWS::SQS::Queue"]))
        triggers = []  # (path, queue, response types)
        for name, resource in cfn.get_resources(["AWS::Serverless::Function"]).items():
            for event_name, event in (resource.get("Properties", {}).get("Events") or {}).items():
                if event.get("Type") == "SQS":
                    properties = event.get("Properties", {})
                    path = ["Resources", name, "Properties", "Events", event_name]
                    triggers.append((path, properties.get("Queue"), properties.get("FunctionResponseTypes")))
        for name, resource in cfn.get_resources(["AWS::Lambda::EventSourceMapping"]).items():
            properties = resource.get("Properties", {})
            path = ["Resources", name, "Properties"]
            triggers.append((path, properties.get("EventSourceArn"), properties.get("FunctionResponseTypes")))
        matches = []
        for path, source, response_types in triggers:
            if _arn_target(source) in queues and "ReportBatchItemFailures" not in (response_types or []):
                matches.append(RuleMatch(path, f"{'/'.join(map(str, path[1:]))} does not report batch item failures"))
        return matches


class DeadLetterQueuesAreRedriven(CloudFormationLintRule):
    """What lands in a dead-letter queue is looked at: the redrive function serves every DLQ."""

    id = "E9104"
    shortdesc = "Dead-letter queue the redrive does not serve"
    description = (
        "Every dead-letter queue (of a redrive policy or a rule target) must be listed in the "
        "DEAD_LETTER_QUEUES environment variable of the redrive function"
    )
    source_url = "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-configure-dead-letter-queue-redrive.html"
    tags = ["paysaga", "sqs"]

    def match(self, cfn):
        served: set[str] = set()
        for kind in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            for resource in cfn.get_resources([kind]).values():
                variables = resource.get("Properties", {}).get("Environment", {}).get("Variables", {})
                if isinstance(variables, dict) and "DEAD_LETTER_QUEUES" in variables:
                    served |= _referenced(variables["DEAD_LETTER_QUEUES"])
        return [
            RuleMatch(["Resources", dlq], f"dead-letter queue {dlq} is not in any function's DEAD_LETTER_QUEUES: nothing redrives it")
            for dlq in sorted(_dead_letter_queues(cfn) - served)
        ]


def _sqs_grants(cfn, function: dict) -> set[str]:
    """Queues a function's permissions name in some SQS action: the statements of its explicit
    `Role` (an AWS::IAM::Role of the template), and its SAM `Policies` (SQS policy templates,
    inline statements)."""
    granted: set[str] = set()

    def from_statements(statements: Any) -> None:
        for statement in statements if isinstance(statements, list) else [statements]:
            if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
                continue
            actions = statement.get("Action", [])
            actions = actions if isinstance(actions, list) else [actions]
            if any(isinstance(a, str) and a.startswith("sqs:") for a in actions):
                granted.update(_referenced(statement.get("Resource")))

    properties = function.get("Properties", {})
    role = _arn_target(properties.get("Role"))
    if role:
        role_resource = cfn.get_resources(["AWS::IAM::Role"]).get(role, {})
        for policy in role_resource.get("Properties", {}).get("Policies", []) or []:
            from_statements(policy.get("PolicyDocument", {}).get("Statement", []))
    for policy in properties.get("Policies", []) or []:
        if isinstance(policy, dict):
            for name, argument in policy.items():
                if name.startswith("SQS"):
                    granted.update(_referenced(argument))
                elif name == "Statement":
                    from_statements(argument)
    return granted


class DeadLetterQueuesAreReachable(CloudFormationLintRule):
    """A dead-letter queue a function is configured with is one its permissions reach."""

    id = "E9105"
    shortdesc = "Dead-letter queue a function's permissions do not name"
    description = (
        "Every dead-letter queue named in a function's DEAD_LETTER_QUEUES must be named in an "
        "SQS statement of that function's role or policies (the redrive reads them, the saga "
        "sends to them): a queue added to the list but not to the role fails only on AWS"
    )
    source_url = "https://docs.aws.amazon.com/lambda/latest/dg/lambda-intro-execution-role.html"
    tags = ["paysaga", "sqs", "iam"]

    def match(self, cfn):
        dlqs = _dead_letter_queues(cfn)
        matches = []
        for name, function in cfn.get_resources(["AWS::Serverless::Function", "AWS::Lambda::Function"]).items():
            variables = function.get("Properties", {}).get("Environment", {}).get("Variables", {})
            if not isinstance(variables, dict) or "DEAD_LETTER_QUEUES" not in variables:
                continue
            granted = _sqs_grants(cfn, function)
            for dlq in sorted((_referenced(variables["DEAD_LETTER_QUEUES"]) & dlqs) - granted):
                matches.append(RuleMatch(
                    ["Resources", name, "Properties", "Environment", "Variables", "DEAD_LETTER_QUEUES"],
                    f"{name} is configured with dead-letter queue {dlq}, but no SQS statement of its permissions names it"))
        return matches
