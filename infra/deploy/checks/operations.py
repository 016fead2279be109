#!/usr/bin/env python3
"""Operations, checked: the alarms and the dashboard watch what exists. Run by `make check-infra`
(and so by `make test`); exits 1 on any finding.

Reads infra/template.yaml as written, and what each function's code writes as metrics
(infra/deploy/checks/code_model.py: names, dimensions, the `service` value and the namespace its
code names, unless the function's environment overrides that: POWERTOOLS_METRICS_NAMESPACE).

  OPS001  a queue (AWS::SQS::Queue) without an alarm on the age of its oldest message
  OPS002  a dead-letter queue (a redrive policy's or a rule target's) without an alarm on its
          depth above zero (ApproximateNumberOfMessagesVisible > 0) that treats missing data as
          not breaching (SQS writes nothing while a queue is empty)
  OPS003  a function without an alarm on its Errors, or on its Throttles
  OPS004  an alarm or the dashboard names a metric of the functions' namespace that no function
          writes: not that name, not those dimensions, not from that `service`, or a `queue`
          that is not a queue of the template
  OPS005  an alarm or the dashboard names an AWS metric its namespace does not define (AWS/SQS,
          AWS/Lambda: the lists below), with dimensions other than that namespace's, or whose
          dimension names no resource of the template (a literal queue name); or another
          namespace altogether
  OPS006  an alarm that does not notify an SNS topic of the template (AlarmActions)
  OPS007  a metric the saga writes for operators has no alarm (SAGA_ALARMS)
  OPS008  no dashboard, or the dashboard does not show what operators look at first
          (DASHBOARD_METRICS; every queue's depth; every function's duration)
  OPS009  something the check cannot read: a dashboard body that is not JSON, an alarm widget
          naming what is not an alarm of the template, a metric call in the code that
          code_model cannot read (it reports, never guesses)

`infra/deploy/checks/operations.py --self-test` runs the check on
infra/deploy/checks/fixtures/operations-broken.yaml and fails unless each finding fires where the
fixture breaks its rule, and nowhere on its good alarms.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import code_model  # noqa: E402
import template_model as tm  # noqa: E402
from iam import Finding  # noqa: E402

QUEUE = "AWS::SQS::Queue"
FUNCTION_TYPES = {"AWS::Serverless::Function", "AWS::Lambda::Function"}
ALARM = "AWS::CloudWatch::Alarm"
DASHBOARD = "AWS::CloudWatch::Dashboard"
TOPIC = "AWS::SNS::Topic"

# AWS's own metrics, and the dimension each takes here: a small known list, from the SQS
# Developer Guide ("Available CloudWatch metrics for Amazon SQS", standard queues) and the Lambda
# Developer Guide ("Types of metrics for Lambda functions", per function). A name outside these is
# a typo or a metric of another resource kind.
AWS_METRICS: dict[str, tuple[set[str], dict[str, tuple[set[str], str | None]]]] = {
    # namespace: (metric names, {dimension: (resource types its value names, GetAtt attribute or None for Ref)})
    "AWS/SQS": ({
        "ApproximateAgeOfOldestMessage", "ApproximateNumberOfMessagesDelayed",
        "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesVisible",
        "NumberOfEmptyReceives", "NumberOfMessagesDeleted", "NumberOfMessagesReceived",
        "NumberOfMessagesSent", "SentMessageSize",
    }, {"QueueName": ({QUEUE}, "QueueName")}),
    "AWS/Lambda": ({
        "Invocations", "Errors", "DeadLetterErrors", "DestinationDeliveryFailures", "Throttles",
        "OversizedRecordCount", "ProvisionedConcurrencySpilloverInvocations",
        "RecursiveInvocationsDropped", "Duration", "PostRuntimeExtensionsDuration",
        "ConcurrentExecutions", "ProvisionedConcurrentExecutions",
        "ProvisionedConcurrencyUtilization", "AsyncEventsReceived", "AsyncEventAge",
        "AsyncEventsDropped",
        # A stream trigger's: the age of the last record of a batch when it was handed over.
        "IteratorAge",
    }, {"FunctionName": (FUNCTION_TYPES, None)}),
}
SERVICE = "service"  # the dimension of every document the functions write (shared/lambda-toolkit/src/metrics.rs)
QUEUE_DIMENSION = "queue"  # its value: the name of the queue a message came from
# The saga's metrics operators are paged on (README "Operate"): its compensations and its
# payment processor circuit.
SAGA_ALARMS = {"PaymentsCompensated", "CircuitBreakerState"}
# What the dashboard must show besides every queue's depth and every function's duration.
DASHBOARD_METRICS = {"PaymentsCompleted", "PaymentsFailed", "PaymentsCompensated", "CircuitBreakerState"}


@dataclass(frozen=True)
class Value:
    """A dimension value: a literal, or the resource (and attribute) it names."""
    literal: str | None = None
    lid: str | None = None
    attr: str | None = None  # None: Ref

    def __str__(self) -> str:
        if self.lid is None:
            return repr(self.literal)
        return f"{self.lid}.{self.attr}" if self.attr else f"Ref {self.lid}"


@dataclass(frozen=True)
class MetricRef:
    where: str
    namespace: str
    name: str
    dimensions: tuple[tuple[str, Value], ...]

    def shown(self) -> str:
        dims = ", ".join(f"{k}={v}" for k, v in self.dimensions)
        return f"{self.namespace} {self.name}({dims})"


# --------------------------------------------------------------------------- reading the template

def value_of(node: Any) -> Value:
    if isinstance(node, (str, int, float)):
        text = str(node)
        if m := re.fullmatch(r"\$\{([A-Za-z0-9]+)(?:\.([A-Za-z0-9.]+))?\}", text):  # in a Sub body
            return Value(lid=m.group(1), attr=m.group(2))
        return Value(literal=text)
    if (g := tm.getatt(node)) is not None:
        return Value(lid=g[0], attr=g[1])
    if (r := tm.ref(node)) is not None:
        return Value(lid=r)
    if (text := tm.sub_text(node)) is not None:
        return value_of(text) if "${" in text else Value(literal=text)
    return Value(literal=tm.dumps(node))


def alarm_metrics(lid: str, props: dict) -> list[MetricRef]:
    """The metrics an alarm watches: its own, or each MetricStat of its metric math."""
    def ref(where: str, spec: dict) -> MetricRef:
        dims = tuple((str(d.get("Name")), value_of(d.get("Value"))) for d in spec.get("Dimensions", []) or [])
        return MetricRef(where, str(spec.get("Namespace")), str(spec.get("MetricName")), dims)

    if "MetricName" in props:
        return [ref(lid, props)]
    return [ref(f"{lid}/{query.get('Id')}", query["MetricStat"]["Metric"])
            for query in props.get("Metrics", []) or [] if "MetricStat" in query]


def dashboard_body(props: dict) -> str:
    body = props.get("DashboardBody")
    if isinstance(body, str):
        return body
    text = tm.sub_text(body)
    if text is None:
        raise ValueError(f"DashboardBody is {tm.dumps(body)[:80]}: a string or a Fn::Sub of one")
    return text


def dashboard_widgets(lid: str, props: dict) -> tuple[list[MetricRef], list[tuple[str, Value]], list[Finding]]:
    """A dashboard's metrics, the alarms its alarm widgets name, and what cannot be read."""
    try:
        body = json.loads(dashboard_body(props))
    except ValueError as error:
        return [], [], [Finding("OPS009", lid, f"DashboardBody is not JSON: {error}")]
    metrics, alarms, findings = [], [], []
    for i, widget in enumerate(body.get("widgets", [])):
        where = f"{lid}/{widget.get('properties', {}).get('title') or f'widget {i}'}"
        props_ = widget.get("properties", {})
        if widget.get("type") == "alarm":
            alarms += [(where, value_of(arn)) for arn in props_.get("alarms", [])]
            continue
        previous: list = []
        for row in props_.get("metrics", []) if widget.get("type") == "metric" else []:
            parts = [p for p in row if not isinstance(p, dict)]
            if not parts:  # an expression row: {"expression": ..., "id": ...}
                continue
            # "." repeats the previous row's value at that place (the dashboard body's shorthand)
            parts = [previous[j] if p == "." and j < len(previous) else p for j, p in enumerate(parts)]
            previous = parts
            if len(parts) < 2 or len(parts) % 2:
                findings.append(Finding("OPS009", where, f"metric row {row}: not [namespace, name, dimension, value, ...]"))
                continue
            dims = tuple((str(parts[j]), value_of(parts[j + 1])) for j in range(2, len(parts), 2))
            metrics.append(MetricRef(where, str(parts[0]), str(parts[1]), dims))
    return metrics, alarms, findings


def dead_letter_queues(resources: dict) -> set[str]:
    """Queues a redrive policy or a rule target sends dead letters to."""
    found = set()
    for res in resources.values():
        props = res.get("Properties", {}) or {}
        if res["Type"] == QUEUE:
            target = tm.getatt((props.get("RedrivePolicy") or {}).get("deadLetterTargetArn"))
            if target:
                found.add(target[0])
        if res["Type"] == "AWS::Events::Rule":
            for t in props.get("Targets", []) or []:
                target = tm.getatt((t.get("DeadLetterConfig") or {}).get("Arn"))
                if target:
                    found.add(target[0])
    return found


# --------------------------------------------------------------------------- what the code writes

@dataclass
class Writer:
    lid: str
    service: str
    namespace: str | None  # None: set in the template to something not a literal, or not read from the code
    metrics: set[code_model.MetricWrite]


def writers(template: dict, findings: list[Finding]) -> list[Writer]:
    """The template's functions that write metrics, with what they write."""
    variable = code_model.namespace_variable()
    crates = code_model.function_crates()
    found = []
    for lid, fn in tm.functions(template).items():
        crate = crates.get(tm.binary_of(fn.get("CodeUri")) or "")
        if crate is None:
            continue  # deploy.py's D001
        facts = code_model.facts_of(crate)
        for call in facts.metrics_unread:
            findings.append(Finding("OPS009", lid, f"code_model cannot read the metric this call writes: {call}"))
        if facts.service is None:
            continue
        env = (fn.get("Environment") or {}).get("Variables") or {}
        namespace = env.get(variable, facts.namespace)
        found.append(Writer(lid, facts.service, namespace if isinstance(namespace, str) else None, facts.metrics))
    return found


# --------------------------------------------------------------------------- the rules

def check_metric(ref: MetricRef, resources: dict, writers_: list[Writer], namespaces: set[str]) -> list[Finding]:
    def names(value: Value, types: set[str], attr: str | None) -> bool:
        res = resources.get(value.lid or "")
        return res is not None and res["Type"] in types and value.attr == attr

    if ref.namespace in AWS_METRICS:
        known, dimensions = AWS_METRICS[ref.namespace]
        if ref.name not in known:
            return [Finding("OPS005", ref.where, f"{ref.shown()}: {ref.namespace} has no metric {ref.name}")]
        if {k for k, _ in ref.dimensions} != set(dimensions):
            return [Finding("OPS005", ref.where, f"{ref.shown()}: its dimension here is {', '.join(dimensions)}")]
        wrong = [f"{k}={v}" for k, v in ref.dimensions if not names(v, *dimensions[k])]
        if wrong:
            want = "; ".join(f"{k}: {'!GetAtt <' + '|'.join(sorted(t)) + '>.' + a if a else '!Ref <' + '|'.join(sorted(t)) + '>'}"
                             for k, (t, a) in dimensions.items())
            return [Finding("OPS005", ref.where, f"{ref.shown()}: {', '.join(wrong)} names no resource of the template ({want})")]
        return []
    if ref.namespace not in namespaces:
        return [Finding("OPS005", ref.where, f"{ref.shown()}: namespace {ref.namespace} is neither AWS's "
                        f"({', '.join(sorted(AWS_METRICS))}) nor the functions' ({', '.join(sorted(namespaces))})")]
    dims = dict(ref.dimensions)
    service = dims.get(SERVICE)
    if service is None or service.literal is None:
        return [Finding("OPS004", ref.where, f"{ref.shown()}: every metric the functions write has the dimension "
                        f"{SERVICE} = the function's name, written as it is")]
    wanted = code_model.MetricWrite(ref.name, frozenset(dims) - {SERVICE})
    written_by = [w for w in writers_ if w.service == service.literal and w.namespace == ref.namespace]
    if not any(wanted in w.metrics for w in written_by):
        what = (f"{service.literal} writes {', '.join(sorted(shown(m) for m in written_by[0].metrics))}" if written_by
                else f"no function of the template writes metrics as {SERVICE}={service.literal} in {ref.namespace}")
        return [Finding("OPS004", ref.where, f"{ref.shown()}: no function writes it ({what})")]
    queue = dims.get(QUEUE_DIMENSION)
    if queue is not None and not names(queue, {QUEUE}, "QueueName"):
        return [Finding("OPS004", ref.where, f"{ref.shown()}: {QUEUE_DIMENSION}={queue} is not a queue of the "
                        "template (!GetAtt <Queue>.QueueName, the name SQS gives the function)")]
    return []


def shown(write: code_model.MetricWrite) -> str:
    return f"{write.name}({', '.join(sorted({SERVICE} | write.dimensions))})"


def watches(ref: MetricRef, namespace: str, name: str, lid: str) -> bool:
    return ref.namespace == namespace and ref.name == name and any(v.lid == lid for _, v in ref.dimensions)


def check(template: dict) -> list[Finding]:
    findings: list[Finding] = []
    resources = template.get("Resources", {})
    of_type = lambda *types: {lid: r.get("Properties", {}) or {} for lid, r in resources.items() if r["Type"] in types}  # noqa: E731
    alarms, dashboards = of_type(ALARM), of_type(DASHBOARD)
    topics = set(of_type(TOPIC))

    writers_ = writers(template, findings)
    namespaces = {w.namespace for w in writers_ if w.namespace}

    watched: dict[str, list[MetricRef]] = {lid: alarm_metrics(lid, props) for lid, props in alarms.items()}
    for lid, props in alarms.items():
        for ref in watched[lid]:
            findings += check_metric(ref, resources, writers_, namespaces)
        actions = {tm.ref(a) for a in props.get("AlarmActions", []) or []}
        if not actions & topics:
            findings.append(Finding("OPS006", lid, f"AlarmActions {tm.dumps(props.get('AlarmActions', []))}: "
                                    f"no SNS topic of the template ({', '.join(sorted(topics)) or 'none defined'}); nobody is told"))

    shown_metrics: list[MetricRef] = []
    for lid, props in dashboards.items():
        metrics, alarm_refs, unread = dashboard_widgets(lid, props)
        findings += unread
        shown_metrics += metrics
        for ref in metrics:
            findings += check_metric(ref, resources, writers_, namespaces)
        for where, value in alarm_refs:
            if value.lid not in alarms or value.attr != "Arn":
                findings.append(Finding("OPS009", where, f"alarm widget names {value}: not ${{<Alarm>.Arn}} of an alarm of the template"))

    every_ref = [(lid, ref) for lid, refs in watched.items() for ref in refs]
    queues = [lid for lid, r in resources.items() if r["Type"] == QUEUE]
    dlqs = dead_letter_queues(resources)
    for queue in queues:
        if not any(watches(ref, "AWS/SQS", "ApproximateAgeOfOldestMessage", queue) for _, ref in every_ref):
            findings.append(Finding("OPS001", queue, "no alarm on the age of its oldest message (AWS/SQS ApproximateAgeOfOldestMessage)"))
        if queue in dlqs and not any(
                watches(ref, "AWS/SQS", "ApproximateNumberOfMessagesVisible", queue) and above_zero(alarms[lid])
                for lid, ref in every_ref):
            findings.append(Finding("OPS002", queue, "a dead-letter queue without an alarm on ApproximateNumberOfMessagesVisible "
                                    "above 0 (GreaterThanThreshold 0) with TreatMissingData notBreaching"))
    for fn in tm.functions(template) | {lid: r for lid, r in resources.items() if r["Type"] == "AWS::Lambda::Function"}:
        for metric in ("Errors", "Throttles"):
            if not any(watches(ref, "AWS/Lambda", metric, fn) for _, ref in every_ref):
                findings.append(Finding("OPS003", fn, f"no alarm on its {metric} (AWS/Lambda {metric}, FunctionName = !Ref {fn})"))
    saga = {w.lid for w in writers_ if any(m.name in SAGA_ALARMS for m in w.metrics)}
    if saga:
        for name in sorted(SAGA_ALARMS):
            if not any(ref.name == name and ref.namespace in namespaces for _, ref in every_ref):
                findings.append(Finding("OPS007", name, f"no alarm on {name}, which {', '.join(sorted(saga))} writes for operators"))

    if not dashboards:
        findings.append(Finding("OPS008", "template", "no AWS::CloudWatch::Dashboard"))
    else:
        def on_dashboard(namespace: str, name: str, lid: str | None = None) -> bool:
            return any(r.namespace == namespace and r.name == name and (lid is None or any(v.lid == lid for _, v in r.dimensions))
                       for r in shown_metrics)
        missing = [name for name in sorted(DASHBOARD_METRICS) if not any(r.name == name for r in shown_metrics)]
        missing += [f"the depth of {q}" for q in queues if not on_dashboard("AWS/SQS", "ApproximateNumberOfMessagesVisible", q)]
        missing += [f"the duration of {fn}" for fn in tm.functions(template) if not on_dashboard("AWS/Lambda", "Duration", fn)]
        for what in missing:
            findings.append(Finding("OPS008", ",".join(sorted(dashboards)), f"the dashboard does not show {what}"))
    return findings


def above_zero(props: dict) -> bool:
    try:
        threshold = float(props.get("Threshold"))
    except (TypeError, ValueError):
        return False
    operator = props.get("ComparisonOperator")
    fires_on_one = ((operator == "GreaterThanThreshold" and 0 <= threshold < 1)
                    or (operator == "GreaterThanOrEqualToThreshold" and 0 < threshold <= 1))
    return fires_on_one and props.get("TreatMissingData") == "notBreaching"


# --------------------------------------------------------------------------- self-test

SELF_TEST_CODE = '''
fn handle(metrics: &mut Metrics, outcome: Outcome) {
    metrics.count("Direct", &[("queue", queue)], 1);
    let metric = match outcome { Outcome::A => "FromMatch", Outcome::B => "OtherArm" };
    metrics.count(metric, &[], 1);
    let dims = [("kind", kind.as_str())];
    metrics.gauge("Gauged", &dims, 1.0, Unit::None,);
    add_to(metrics, "ThroughHelper", 2);
    metrics.count(name_of(outcome), &[], 1);
    let n = items.iter().count();
}
fn add_to(metrics: &mut Metrics, name: &str, n: u64) {
    metrics.count(name, &[("queue", "q")], n);
}
'''
# The namespace and service of a function's metrics: MetricsSink::stdout's arguments, the
# namespace a literal or a const of the reached code.
SELF_TEST_MAIN = '''
pub const NAMESPACE: &str = "shop";
async fn main() {
    let consumer = sqs_consumer(handler, MetricsSink::stdout(shop::NAMESPACE, "orders"), &settings, &sdk);
}
'''
SELF_TEST_WRITES = {("Direct", frozenset({"queue"})), ("FromMatch", frozenset()), ("OtherArm", frozenset()),
                    ("Gauged", frozenset({"kind"})), ("ThroughHelper", frozenset({"queue"}))}


def self_test() -> int:
    fixture = Path(__file__).resolve().parent / "fixtures" / "operations-broken.yaml"
    template = tm.load(fixture)
    findings = check(template)
    for f in findings:
        print(f"  {f}")
    # (finding, where it must fire): each broken place of the fixture
    expected = {
        ("OPS001", "Unwatched"), ("OPS001", "WorkDeadLetters"), ("OPS002", "WorkDeadLetters"),
        ("OPS003", "Projector"),
        ("OPS004", "MadeUpMetricAlarm"), ("OPS004", "WrongDimensionsAlarm"), ("OPS004", "WrongServiceAlarm"),
        ("OPS004", "LiteralQueueDimensionAlarm"), ("OPS004", "Dashboard/Payments"),
        ("OPS005", "NoSuchSqsMetricAlarm"), ("OPS005", "LiteralQueueAlarm"), ("OPS005", "Dashboard/Durations"),
        ("OPS006", "SilentAlarm"),
        ("OPS007", "CircuitBreakerState"),
        ("OPS008", "Dashboard"),
        ("OPS009", "Dashboard/Alarms"),
    }
    missing = {(code, where) for code, where in expected
               if not any(f.code == code and f.where == where for f in findings)}
    # OPS008's particulars: the dashboard misses the breaker, a queue's depth and a function's duration
    for what in ("CircuitBreakerState", "the depth of Unwatched", "the duration of Projector"):
        if not any(f.code == "OPS008" and f.message.endswith(what) for f in findings):
            missing.add(("OPS008", what))
    good = [f for f in findings if "Good" in f.where]
    # OPS009: a dashboard body that is not JSON
    broken = tm.load(fixture)
    broken["Resources"]["Dashboard"]["Properties"]["DashboardBody"] = {"Fn::Sub": '{"widgets": [ '}
    if not any(f.code == "OPS009" and f.where == "Dashboard" for f in check(broken)):
        missing.add(("OPS009", "Dashboard (not JSON)"))
    # OPS009's code side, and what code_model reads: a collector call it cannot read is reported
    written, unread = code_model.metric_writes(SELF_TEST_CODE, SELF_TEST_CODE)
    if {(w.name, w.dimensions) for w in written} != SELF_TEST_WRITES:
        missing.add(("code_model", f"read {sorted((w.name, sorted(w.dimensions)) for w in written)}"))
    if unread != [".count(name_of(outcome), &[], 1)"]:
        missing.add(("code_model", f"unread {unread}"))
    sink = code_model.metrics_sink(SELF_TEST_MAIN)
    if sink != ("shop::NAMESPACE", "orders") or code_model.namespace_of(sink[0], [SELF_TEST_MAIN]) != "shop":
        missing.add(("code_model", f"namespace and service {sink}"))
    if code_model.namespace_of("namespace()", [SELF_TEST_MAIN]) is not None or \
            code_model.namespace_of("OTHER_NAMESPACE", [SELF_TEST_MAIN]) is not None:
        missing.add(("code_model", "a namespace that is neither a literal nor a reached const was read"))
    if missing or good:
        print(f"operations: self-test FAILED on {fixture.name}: did not fire: {sorted(missing)}; "
              f"fired on a good place: {good}", file=sys.stderr)
        return 1
    print(f"operations: self-test passed: OPS001-OPS009 fire on each of the {len(expected) + 3} broken places of "
          f"{fixture.name}, on a dashboard body that is not JSON and on a metric call code_model cannot read; "
          "code_model reads a namespace and a service; "
          "its good alarms pass")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("template", nargs="?", type=Path, default=tm.TEMPLATE)
    parser.add_argument("--self-test", action="store_true",
                        help="check infra/deploy/checks/fixtures/operations-broken.yaml: every finding must fire")
    args = parser.parse_args()
    if args.self_test:
        return self_test()
    template = tm.load(args.template)
    findings = check(template)
    for f in findings:
        print(f"operations: {f}", file=sys.stderr)
    if findings:
        print(f"operations: {len(findings)} finding(s) in {args.template}", file=sys.stderr)
        return 1
    resources = template["Resources"]
    count = lambda t: sum(1 for r in resources.values() if r["Type"] == t)  # noqa: E731
    print(f"operations: {count(ALARM)} alarms, each notifying its topic, on every queue ({count(QUEUE)}), dead-letter "
          f"queue and function; every metric they and the dashboard name is one AWS or a function writes")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except tm.TemplateError as error:
        print(f"operations: ERROR: {error}", file=sys.stderr)
        sys.exit(1)
