#!/usr/bin/env bash
# The AWS SAM CLI of this project, in .local/sam-venv (pinned: infra/deploy/requirements.txt).
#
#   infra/deploy/sam.sh install     install it if missing or its pins changed (about 1 minute)
#   infra/deploy/sam.sh <sam args>  run it (telemetry off), e.g. `validate --lint`
#
# A venv of its own: aws-sam-cli's boto3/cryptography pins conflict with LocalStack's in
# .local/venv. `sam validate` works offline and without credentials; `sam deploy` needs an
# account (or LocalStack: see the README's Deploy section).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/infra/deploy"
VENV="$ROOT/.local/sam-venv"
LOGS="$ROOT/.local/logs"
PIP_DEADLINE=900 # seconds; a cold install downloads about 60 MB

say() { printf 'sam: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

install() {
  command -v python3 >/dev/null || die "python3 not found"
  local pyver stamp
  pyver="$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  stamp="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1) python$pyver $VENV"
  if [[ -x $VENV/bin/sam && -f $VENV/.paysaga-stamp && "$(<"$VENV/.paysaga-stamp")" == "$stamp" ]]; then
    say ".local/sam-venv is up to date"
    return
  fi
  say "installing the AWS SAM CLI into .local/sam-venv - about 1 minute the first time"
  mkdir -p "$LOGS"
  rm -rf "$VENV"
  timeout 120 python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install -y python3-venv)"
  if ! PIP_CACHE_DIR="$ROOT/.local/cache/pip" timeout "$PIP_DEADLINE" "$VENV/bin/pip" install --no-input \
    --disable-pip-version-check --progress-bar off -r "$HERE/requirements.txt" >"$LOGS/install-sam.log" 2>&1; then
    tail -n 20 "$LOGS/install-sam.log" >&2
    die "pip install failed (log: $LOGS/install-sam.log)"
  fi
  SAM_CLI_TELEMETRY=0 timeout 120 "$VENV/bin/sam" --version >/dev/null ||
    die "the SAM CLI installed but does not run (log: $LOGS/install-sam.log)"
  echo "$stamp" >"$VENV/.paysaga-stamp"
  say "installed: $(SAM_CLI_TELEMETRY=0 "$VENV/bin/sam" --version)"
}

case "${1:-}" in
  install) install ;;
  "") die "usage: infra/deploy/sam.sh install | <sam arguments>" ;;
  *)
    [[ -x $VENV/bin/sam ]] || die "no .local/sam-venv: run 'make sam-install' first"
    SAM_CLI_TELEMETRY=0 exec "$VENV/bin/sam" "$@"
    ;;
esac
