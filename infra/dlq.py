#!/usr/bin/env python3
"""The operator's view of paysaga's dead-letter queues, through the dlq-redrive function.

  infra/dlq.py status                      queue and DLQ depths, parked messages waiting
  infra/dlq.py parked [--all]              the parking table (waiting ones, or all)
  infra/dlq.py show PARKED_ID              one parked message, whole
  infra/dlq.py replay PARKED_ID [--body-file FILE] [--to QUEUE_ARN] [--force]
  infra/dlq.py redrive [QUEUE] [--rate N] [--max N] [--whole-queue]

Every command is one `aws lambda invoke` of the dlq-redrive function, so the same commands
serve the local stack (the default: infra/local/aws, which reaches local-lambda) and a
deployed stack (PAYSAGA_AWS=aws DLQ_REDRIVE_FUNCTION=<the stack's DlqRedriveFunctionName
output>). Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AWS = os.environ.get("PAYSAGA_AWS", str(ROOT / "infra/local/aws"))
FUNCTION = os.environ.get("DLQ_REDRIVE_FUNCTION", "dlq-redrive")


class OperatorError(Exception):
    """Printed without a traceback."""


def invoke(request: dict) -> dict | list:
    with tempfile.TemporaryDirectory() as scratch:
        out, payload = Path(scratch) / "response.json", Path(scratch) / "request.json"
        payload.write_text(json.dumps(request))
        # fileb:// reads the payload as it is in both AWS CLI v1 and v2 (v2 would take a
        # plain --payload for base64); no read timeout: a redrive may take minutes.
        command = [*AWS.split(), "lambda", "invoke", "--function-name", FUNCTION,
                   "--cli-read-timeout", "0", "--payload", f"fileb://{payload}", str(out)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise OperatorError(f"aws lambda invoke failed ({done.returncode}): {done.stderr.strip()}")
        meta = json.loads(done.stdout or "{}")
        response = json.loads(out.read_text() or "null")
        if meta.get("FunctionError"):
            raise OperatorError(f"{response.get('errorType')}: {response.get('errorMessage')}")
        return response


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    line = lambda cells: "  ".join(str(cell).ljust(width) for cell, width in zip(cells, widths)).rstrip()
    return "\n".join([line(headers), line(["-" * width for width in widths]), *map(line, rows)])


def status(_: argparse.Namespace) -> None:
    answer = invoke({"action": "status"})
    rows = [[q["queue"], q.get("dead_letter_queue", "(dead-letter queue)"), q["visible"], q["in_flight"], q["delayed"]]
            for q in answer["queues"]]
    print(table(rows, ["QUEUE", "ITS DLQ", "VISIBLE", "IN FLIGHT", "DELAYED"]))
    print(f"\nparked messages waiting for an operator: {answer['parked_waiting']}")


def parked(args: argparse.Namespace) -> None:
    messages, after = [], None
    while True:
        request = {"action": "parked", "limit": 200, **({"after": after} if after else {})}
        page = invoke(request)
        messages += page["messages"]
        after = page.get("next")
        if not after:
            break
    if not args.all:
        messages = [m for m in messages if m["status"] == "parked"]
    if not messages:
        print("no parked messages" + ("" if args.all else " waiting (--all shows replayed ones)"))
        return
    rows = [[m["parked_id"], m["status"], m["parked_at"][:19], m["reason"][:80]] for m in messages]
    print(table(rows, ["PARKED ID", "STATUS", "PARKED AT", "REASON"]))
    print("\nshow one: infra/dlq.py show PARKED_ID; replay it: infra/dlq.py replay PARKED_ID [--body-file FILE]")


def show(args: argparse.Namespace) -> None:
    message = invoke({"action": "show", "parked_id": args.parked_id})
    try:
        message["body"] = json.loads(message["body"])
    except ValueError:
        pass  # shown as the text it is
    print(json.dumps(message, indent=2))


def replay(args: argparse.Namespace) -> None:
    request = {"action": "replay", "parked_id": args.parked_id, "force": args.force}
    if args.body_file:
        request["body"] = Path(args.body_file).read_text()
    if args.to:
        request["destination"] = args.to
    answer = invoke(request)
    edited = " (with the fixed body)" if answer["body_edited"] else ""
    print(f"replayed {answer['parked_id']} to {answer['sent_to']}{edited}")


def redrive(args: argparse.Namespace) -> None:
    request = {"action": "redrive", "mode": "whole-queue" if args.whole_queue else "selective"}
    if args.queue:
        request["queue"] = args.queue
    if args.rate:
        request["max_per_second"] = args.rate
    if args.max:
        request["max_messages"] = args.max
    for queue in invoke(request)["queues"]:
        if "error" in queue:
            print(f"{queue['queue']}: FAILED: {queue['error']}")
        elif "move_task" in queue:
            print(f"{queue['queue']}: SQS moves it to {queue['destination']} (task {queue['move_task']})")
        else:
            left = sum(queue["left"].values())
            print(f"{queue['queue']}: examined {queue['examined']}, sent back {queue['sent_back']}, "
                  f"parked {queue['parked']}, handled before {queue['handled_before']}, left {left}"
                  + (f" (stopped: {queue['stopped']})" if queue.get("stopped") else ""))
            for reason, count in queue["left"].items():
                print(f"  left {count}: {reason}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("status", help="queue and DLQ depths").set_defaults(run=status)
    listing = commands.add_parser("parked", help="the parking table")
    listing.add_argument("--all", action="store_true", help="replayed messages too")
    listing.set_defaults(run=parked)
    one = commands.add_parser("show", help="one parked message, whole")
    one.add_argument("parked_id")
    one.set_defaults(run=show)
    again = commands.add_parser("replay", help="send a parked message again")
    again.add_argument("parked_id")
    again.add_argument("--body-file", help="the fixed body to send instead")
    again.add_argument("--to", help="the queue (ARN) to send it to, when the message names none")
    again.add_argument("--force", action="store_true", help="send a body that breaks the event contracts")
    again.set_defaults(run=replay)
    back = commands.add_parser("redrive", help="redrive one DLQ (name, short name, URL or ARN) or all")
    back.add_argument("queue", nargs="?")
    back.add_argument("--rate", type=int, help="messages per second, at most")
    back.add_argument("--max", type=int, help="messages to examine, at most")
    back.add_argument("--whole-queue", action="store_true", help="have SQS move the whole queue, unread")
    back.set_defaults(run=redrive)
    args = parser.parse_args()
    try:
        args.run(args)
    except OperatorError as error:
        sys.exit(f"dlq: {error}")


if __name__ == "__main__":
    main()
