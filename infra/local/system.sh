#!/usr/bin/env bash
# The paysaga system on the local stack: `local-lambda` runs every function of
# infra/template.yaml (via .local/wiring.json): the API as an HTTP server on 127.0.0.1, the
# others behind a local Runtime API, fed by the SQS event source mapping, their schedules and
# the Lambda Invoke API (aws lambda invoke, cargo lambda invoke) on 127.0.0.1:9001.
# Before it, `payment-processor` (infra/local/payment-processor), the fake external payment processor,
# starts on the address the payment saga is wired to (its PAYMENT_PROCESSOR_URL).
#
# Usage: infra/local/system.sh up|down|status
# Environment: PAYSAGA_API_ADDR (127.0.0.1:3000), PAYSAGA_INVOKE_ADDR (127.0.0.1:9001),
# PAYSAGA_BIN_DIR (target/debug), PAYSAGA_NO_SCHEDULES=1 (functions run only when invoked:
# local-lambda --no-schedules, for tests).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOCAL="$ROOT/.local"
RUN="$LOCAL/run"
LOGS="$LOCAL/logs"
API_ADDR="${PAYSAGA_API_ADDR:-127.0.0.1:3000}"
INVOKE_ADDR="${PAYSAGA_INVOKE_ADDR:-127.0.0.1:9001}"
BIN_DIR="${PAYSAGA_BIN_DIR:-$ROOT/target/debug}"
READY_DEADLINE=60 # s, from spawn to the ready line
STOP_DEADLINE=20  # s, between TERM and KILL

say() { printf 'system: %s\n' "$*"; }
die() { printf '\nsystem: ERROR: %s\n\n' "$*" >&2; exit 1; }

pidfile() { echo "$RUN/$1.pid"; }
logfile() { echo "$LOGS/$1.log"; }
# running NAME: its pid file names a live process. Not `kill -0` alone: a process killed but not
# yet reaped (a zombie) still takes signals, and `up` would take it for a running one.
running() {
  local file pid state
  file="$(pidfile "$1")"
  [[ -f $file ]] || return 1
  pid="$(<"$file")"
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" || return 1
  [[ -n $state && $state != Z && $state != X ]]
}

# forget_crashed NAME: after a crash, the pid file names no live process; what is left of its
# process group (functions it had started) is killed, so a new start finds its ports free.
forget_crashed() {
  local file pid
  file="$(pidfile "$1")"
  [[ -f $file ]] && ! running "$1" || return 0
  pid="$(<"$file")"
  if [[ $pid =~ ^[0-9]+$ ]]; then
    kill -KILL -- "-$pid" 2>/dev/null || true
    say "$1 had stopped (pid $pid): starting it again"
  fi
  rm -f "$file"
}

# close_inherited_fds: closes every descriptor above stderr. Daemons call it before exec so they
# keep none of their starter's open files: a lock held with flock(1) around `make test` would
# otherwise stay locked for as long as the daemon runs.
close_inherited_fds() {
  local fd
  for fd in /proc/"$BASHPID"/fd/*; do
    fd="${fd##*/}"
    if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
  done
}

# start NAME READY_LINE ARGS...: runs $BIN_DIR/NAME in its own session, logging to
# .local/logs/NAME.log, and waits (with a deadline) for the line it prints once ready.
start() {
  local name=$1 ready=$2
  shift 2
  local log pid
  log="$(logfile "$name")"
  [[ -x "$BIN_DIR/$name" ]] || die "$BIN_DIR/$name is missing: build first (make build-local)"
  mkdir -p "$RUN" "$LOGS"
  : >"$log"
  # The log is a file: no colour escapes in it (tracing-subscriber honours NO_COLOR).
  (
    close_inherited_fds
    NO_COLOR=1 exec setsid "$BIN_DIR/$name" "$@"
  ) >>"$log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$(pidfile "$name")"
  local deadline=$((SECONDS + READY_DEADLINE))
  until grep -q "^$ready" "$log"; do
    if ! running "$name"; then
      tail -n 30 "$log" >&2
      rm -f "$(pidfile "$name")"
      die "$name exited during start-up (log: $log)"
    fi
    ((SECONDS < deadline)) || { tail -n 30 "$log" >&2; stop "$name"; die "$name not ready after ${READY_DEADLINE} s"; }
    sleep 0.1
  done
}

# stop NAME: TERM, then KILL of its process group after the deadline.
stop() {
  local name=$1 pid
  [[ -f "$(pidfile "$name")" ]] || return 0
  pid="$(cat "$(pidfile "$name")")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_DEADLINE))
    while running "$name" && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$(pidfile "$name")"
  say "$name stopped"
}

# The payment processor URL the functions are wired with (PAYMENT_PROCESSOR_URL in
# .local/wiring.json, from the template's PaymentProcessorUrl as provision.py overrides it).
processor_url() {
  "$BIN_DIR/local-lambda" wiring variable PAYMENT_PROCESSOR_URL --wiring "$LOCAL/wiring.json" | paste -sd ' '
}

# Starts the fake payment processor where the functions will look for it, if that is a plain
# http address on this machine; a URL elsewhere is left alone (a real sandbox, say).
start_processor() {
  local url
  url="$(processor_url)"
  if ! [[ $url =~ ^http://(127\.0\.0\.1|localhost):([0-9]+)/?$ ]]; then
    say "payment processor URL '${url:-none}' is not on this machine: payment-processor not started"
    return
  fi
  local addr="127.0.0.1:${BASH_REMATCH[2]}"
  if ! running payment-processor; then
    start payment-processor 'payment-processor: listening on ' --addr "$addr"
  fi
  say "fake payment processor on http://$addr (log $(logfile payment-processor))"
}

up() {
  [[ -f "$LOCAL/wiring.json" ]] || die "no .local/wiring.json: start the local stack first (make local-up)"
  forget_crashed payment-processor
  forget_crashed local-lambda
  start_processor
  if ! running local-lambda; then
    # shellcheck disable=SC1091
    source "$LOCAL/stack.env"
    # local-lambda itself refuses to start when a function's binary is missing, and says which.
    local schedules=() assets=()
    [[ ${PAYSAGA_NO_SCHEDULES:-} == 1 ]] && schedules=(--no-schedules)
    # GraphiQL's browser assets (infra/local/graphiql), from the front as a CDN serves them in AWS.
    [[ -d $LOCAL/graphiql/assets ]] && assets=(--assets "/graphiql/assets=$LOCAL/graphiql/assets")
    start local-lambda 'local-lambda: ready' --wiring "$LOCAL/wiring.json" --bin-dir "$BIN_DIR" \
      --http-addr "$API_ADDR" --invoke-addr "$INVOKE_ADDR" "${schedules[@]}" "${assets[@]}"
  fi
  say "functions running (log $(logfile local-lambda)); API on http://$API_ADDR;" \
    "Lambda Invoke API on http://$INVOKE_ADDR"
}

down() {
  # local-lambda stops its function processes on TERM; the process group catches stragglers.
  stop local-lambda
  stop payment-processor
}

status() {
  local name
  for name in local-lambda payment-processor; do
    if running "$name"; then say "$name runs (pid $(cat "$(pidfile "$name")"))"; else say "$name is not running"; fi
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) die "usage: $0 up|down|status" ;;
esac
