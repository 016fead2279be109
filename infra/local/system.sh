#!/usr/bin/env bash
# The paysaga system on the local stack: `local-lambda` runs every function of
# infra/template.yaml (via .local/wiring.json): the API as an HTTP server on 127.0.0.1, and the
# SQS-triggered functions behind a local Runtime API fed by the SQS event source mapping.
# Before it, `payment-processor` (infra/payment-processor), the fake external payment processor,
# starts on the address the payment saga is wired to (its PAYMENT_PROCESSOR_URL).
#
# Usage: infra/local/system.sh up|down|status
# Environment: PAYSAGA_API_ADDR (127.0.0.1:3000), PAYSAGA_BIN_DIR (target/debug).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOCAL="$ROOT/.local"
RUN="$LOCAL/run"
LOGS="$LOCAL/logs"
PIDFILE="$RUN/local-lambda.pid"
LOG="$LOGS/local-lambda.log"
API_ADDR="${PAYSAGA_API_ADDR:-127.0.0.1:3000}"
BIN_DIR="${PAYSAGA_BIN_DIR:-$ROOT/target/debug}"
PROCESSOR_PIDFILE="$RUN/payment-processor.pid"
PROCESSOR_LOG="$LOGS/payment-processor.log"
READY_DEADLINE=60
PROCESSOR_READY_DEADLINE=20
STOP_DEADLINE=20

say() { printf 'system: %s\n' "$*"; }
die() { printf '\nsystem: ERROR: %s\n\n' "$*" >&2; exit 1; }

running() { [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }
processor_running() { [[ -f "$PROCESSOR_PIDFILE" ]] && kill -0 "$(cat "$PROCESSOR_PIDFILE")" 2>/dev/null; }

# The payment processor URL the functions are wired with (PAYMENT_PROCESSOR_URL in
# .local/wiring.json, from the template's PaymentProcessorUrl as provision.py overrides it).
processor_url() {
  python3 -c 'import json, sys
urls = {f["environment"]["PAYMENT_PROCESSOR_URL"] for f in json.load(sys.stdin)["functions"]
        if "PAYMENT_PROCESSOR_URL" in f["environment"]}
print(*sorted(urls))' <"$LOCAL/wiring.json"
}

# Starts the fake payment processor where the functions will look for it, if that is a plain
# http address on this machine; a URL elsewhere is left alone (a real sandbox, say).
start_processor() {
  local url addr
  url="$(processor_url)"
  if [[ -z $url ]]; then
    say "no function is wired to a payment processor: payment-processor not started"
    return
  fi
  if ! [[ $url =~ ^http://(127\.0\.0\.1|localhost):([0-9]+)/?$ ]]; then
    say "payment processor URL $url is not local: payment-processor not started"
    return
  fi
  addr="127.0.0.1:${BASH_REMATCH[2]}"
  if processor_running; then
    say "payment-processor already runs (pid $(cat "$PROCESSOR_PIDFILE")) on http://$addr"
    return
  fi
  [[ -x "$BIN_DIR/payment-processor" ]] || die "$BIN_DIR/payment-processor is missing: build first (make build-local)"
  mkdir -p "$RUN" "$LOGS"
  : >"$PROCESSOR_LOG"
  NO_COLOR=1 setsid "$BIN_DIR/payment-processor" --addr "$addr" >>"$PROCESSOR_LOG" 2>&1 </dev/null &
  echo $! >"$PROCESSOR_PIDFILE"
  local deadline=$((SECONDS + PROCESSOR_READY_DEADLINE))
  until grep -q '^payment-processor: listening on ' "$PROCESSOR_LOG"; do
    if ! processor_running; then
      tail -n 30 "$PROCESSOR_LOG" >&2
      rm -f "$PROCESSOR_PIDFILE"
      die "payment-processor exited during start-up (log: $PROCESSOR_LOG)"
    fi
    ((SECONDS < deadline)) || {
      tail -n 30 "$PROCESSOR_LOG" >&2
      stop_processor
      die "payment-processor not ready after ${PROCESSOR_READY_DEADLINE} s"
    }
    sleep 0.1
  done
  say "fake payment processor running (pid $(cat "$PROCESSOR_PIDFILE"), log $PROCESSOR_LOG) on http://$addr"
}

stop_processor() {
  [[ -f "$PROCESSOR_PIDFILE" ]] || return 0
  local pid
  pid="$(cat "$PROCESSOR_PIDFILE")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_DEADLINE))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$PROCESSOR_PIDFILE"
  say "payment-processor stopped"
}

up() {
  [[ -f "$LOCAL/wiring.json" ]] || die "no .local/wiring.json: start the local stack first (make local-up)"
  start_processor
  if running; then
    say "local-lambda already runs (pid $(cat "$PIDFILE")); API on http://$API_ADDR"
    return
  fi
  # local-lambda itself refuses to start when a function's binary is missing, and says which.
  [[ -x "$BIN_DIR/local-lambda" ]] || die "$BIN_DIR/local-lambda is missing: build first (make build-local)"
  mkdir -p "$RUN" "$LOGS"
  # shellcheck disable=SC1091
  source "$LOCAL/stack.env"
  : >"$LOG"
  # The log is a file: no colour escapes in it (tracing-subscriber honours NO_COLOR).
  NO_COLOR=1 setsid "$BIN_DIR/local-lambda" --wiring "$LOCAL/wiring.json" --bin-dir "$BIN_DIR" \
    --http-addr "$API_ADDR" >>"$LOG" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  local deadline=$((SECONDS + READY_DEADLINE))
  until grep -q '^local-lambda: ready' "$LOG"; do
    if ! running; then
      tail -n 30 "$LOG" >&2
      die "local-lambda exited during start-up (log: $LOG)"
    fi
    ((SECONDS < deadline)) || { tail -n 30 "$LOG" >&2; down; die "local-lambda not ready after ${READY_DEADLINE} s"; }
    sleep 0.2
  done
  say "functions running (pid $(cat "$PIDFILE"), log $LOG); API on http://$API_ADDR"
}

down() {
  stop_functions
  stop_processor
}

stop_functions() {
  if ! [[ -f "$PIDFILE" ]]; then
    return
  fi
  local pid
  pid="$(cat "$PIDFILE")"
  if kill -0 "$pid" 2>/dev/null; then
    # local-lambda stops its function processes on TERM; the process group catches stragglers.
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_DEADLINE))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
  say "functions stopped"
}

status() {
  if running; then say "local-lambda runs (pid $(cat "$PIDFILE")); API on http://$API_ADDR"; else say "not running"; fi
  if processor_running; then say "payment-processor runs (pid $(cat "$PROCESSOR_PIDFILE"))"; fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) die "usage: $0 up|down|status" ;;
esac
