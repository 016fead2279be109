"""Run LocalStack's runtime (host mode) with its gateway listening only where GATEWAY_LISTEN says.

Started by infra/local/stack.sh as `.local/venv/bin/python infra/local/localstack_main.py`.

LocalStack 4.9.2's default gateway server (twisted) ignores the host part of GATEWAY_LISTEN
(localstack/runtime/server/twisted.py: "TODO: interface = host?") and so listens on every
interface. Its alternative server, hypercorn, honours the host but served SQS and EventBridge
calls at about half the rate here (SendMessage ~200/s against ~380/s). This launcher hands the
host to twisted, then runs LocalStack's own entry point.

It also gives LocalStack what AWS EventBridge does and LocalStack 4.9.2 community does not: a
rule target's dead-letter queue. LocalStack logs a failed target delivery and drops the event
(localstack/services/events/provider.py, _process_rules); AWS sends it to the target's
DeadLetterConfig queue with the attributes RULE_ARN, TARGET_ARN, ERROR_CODE, ERROR_MESSAGE,
EXHAUSTED_RETRY_CONDITION and RETRY_ATTEMPTS, where paysaga's dlq-redrive function finds it.
Only errors AWS does not retry are emulated (a missing target, say): nothing retries here.

And it keeps a PutEvents entry's TraceHeader on the SQS message an EventBridge rule sends (the
AWSTraceHeader system attribute), as AWS does and LocalStack 4.9.2 does not.
"""

import runpy
import sys

from localstack import config
from localstack.runtime.server import twisted as twisted_server

_endpoints = getattr(twisted_server, "endpoints", None)
if _endpoints is None or not hasattr(_endpoints, "TCP4ServerEndpoint"):
    sys.exit("localstack_main.py: LocalStack's twisted server changed; revisit this launcher")

_hosts = {listen.port: listen.host for listen in config.GATEWAY_LISTEN}


class _BoundEndpoints:
    """Stands in for twisted.internet.endpoints inside LocalStack's twisted server module only."""

    TCP6ServerEndpoint = _endpoints.TCP6ServerEndpoint

    @staticmethod
    def TCP4ServerEndpoint(reactor, port, backlog=50, interface=""):  # noqa: N802 (twisted's name)
        return _endpoints.TCP4ServerEndpoint(reactor, port, backlog, interface or _hosts.get(port, ""))


twisted_server.endpoints = _BoundEndpoints


def _dead_letter_failed_deliveries() -> None:
    import json
    import logging

    from localstack.aws.connect import connect_to
    from localstack.services.events import target as event_targets
    from localstack.utils.aws import arns

    log = logging.getLogger("paysaga.localstack")
    sender = getattr(event_targets, "TargetSender", None)
    if sender is None or not hasattr(sender, "process_event"):
        sys.exit("localstack_main.py: LocalStack's EventBridge target sender changed; revisit this launcher")
    process_event = sender.process_event

    def error_code(error: Exception) -> str:
        text = f"{type(error).__name__} {error}"
        if "NonExistentQueue" in text or "does not exist" in text or "NotFound" in text:
            return "NO_RESOURCE"
        if "AccessDenied" in text:
            return "NO_PERMISSIONS"
        return "SDK_CLIENT_ERROR"

    def process_event_or_dead_letter(self, event, trace_header):
        try:
            return process_event(self, event, trace_header)
        except Exception as error:
            dlq_arn = (self.target.get("DeadLetterConfig") or {}).get("Arn")
            if not dlq_arn:
                raise
            attributes = {
                "RULE_ARN": self.rule_arn,
                "TARGET_ARN": self.target["Arn"],
                "ERROR_CODE": error_code(error),
                "ERROR_MESSAGE": str(error)[:1000] or type(error).__name__,
                "EXHAUSTED_RETRY_CONDITION": "MaximumRetryAttempts",
                "RETRY_ATTEMPTS": "0",
            }
            sqs = connect_to(region_name=arns.extract_region_from_arn(dlq_arn)).sqs.request_metadata(
                source_arn=self.rule_arn, service_principal="events"
            )
            sqs.send_message(
                QueueUrl=arns.sqs_queue_url_for_arn(dlq_arn),
                MessageBody=json.dumps({k: v for k, v in event.items() if k != "event-bus-name"}),
                MessageAttributes={
                    name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()
                },
            )
            log.info("event %s not delivered to %s (%s): sent to its dead-letter queue %s",
                     event.get("id"), self.target["Arn"], attributes["ERROR_CODE"], dlq_arn)
            raise

    sender.process_event = process_event_or_dead_letter


def _sqs_targets_keep_the_trace_header() -> None:
    """AWS EventBridge hands a PutEvents entry's TraceHeader to an SQS target as the message's
    AWSTraceHeader system attribute; LocalStack 4.9.2 drops it (SqsTargetSender.send_event never
    passes it on, and the trace it is given is the PutEvents call's, not the entry's). Target
    delivery runs inside _process_entry, so the entry's header is kept there for the sender."""
    import contextvars

    from localstack.services.events import provider as events_provider
    from localstack.services.events import target as event_targets

    provider = getattr(events_provider, "EventsProvider", None)
    sender = getattr(event_targets, "SqsTargetSender", None)
    if not hasattr(provider, "_process_entry") or not hasattr(sender, "send_event"):
        sys.exit("localstack_main.py: LocalStack's EventBridge provider changed; revisit this launcher")
    process_entry = provider._process_entry
    entry_trace_header = contextvars.ContextVar("paysaga_entry_trace_header", default=None)

    def process_entry_keeping_its_trace(self, entry, *args, **kwargs):
        token = entry_trace_header.set(entry.get("TraceHeader"))
        try:
            return process_entry(self, entry, *args, **kwargs)
        finally:
            entry_trace_header.reset(token)

    def send_event(self, event, trace_header):
        kwargs = {}
        if group := self.target.get("SqsParameters", {}).get("MessageGroupId"):
            kwargs["MessageGroupId"] = group
        if header := entry_trace_header.get():
            kwargs["MessageSystemAttributes"] = {"AWSTraceHeader": {"DataType": "String", "StringValue": header}}
        self.client.send_message(
            QueueUrl=event_targets.sqs_queue_url_for_arn(self.target["Arn"]),
            MessageBody=event_targets.to_json_str(event),
            **kwargs,
        )

    provider._process_entry = process_entry_keeping_its_trace
    sender.send_event = send_event


_dead_letter_failed_deliveries()
_sqs_targets_keep_the_trace_header()
runpy.run_module("localstack.runtime.main", run_name="__main__", alter_sys=True)
