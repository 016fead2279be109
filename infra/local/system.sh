#!/usr/bin/env bash
# The paysaga system on the local stack: `local-lambda` runs every function of
# infra/template.yaml (via .local/wiring.json): the API as an HTTP server on 127.0.0.1, and the
# SQS-triggered functions behind a local Runtime API fed by the SQS event source mapping.
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
READY_DEADLINE=60
STOP_DEADLINE=20

say() { printf 'system: %s\n' "$*"; }
die() { printf '\nsystem: ERROR: %s\n\n' "$*" >&2; exit 1; }

running() { [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

up() {
  [[ -f "$LOCAL/wiring.json" ]] || die "no .local/wiring.json: start the local stack first (make local-up)"
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
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) die "usage: $0 up|down|status" ;;
esac
