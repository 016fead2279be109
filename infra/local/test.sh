#!/usr/bin/env bash
# `make test`: every check, from nothing. Installs what is missing, starts its own local stack
# (or reuses one `make run` left running), runs the integration tests on it, and stops what it
# started, whatever happens. Exits non-zero on any failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
CARGO="${CARGO:-cargo}"

started=$SECONDS
step() { printf '\n==> [%4d s] %s\n' "$((SECONDS - started))" "$*"; }

step "format check"
"$CARGO" fmt --all -- --check

step "clippy (warnings are errors)"
"$CARGO" clippy --workspace --all-targets --locked -- -D warnings

step "unit and handler tests"
"$CARGO" test --workspace --locked

step "the local stack's build (fault injection, local JWT check): clippy and its tests"
"$CARGO" clippy --locked -p paysaga-services -p paysaga-http -p payment-saga -p api --features payment-saga/fault-injection,api/local-authorizer --all-targets -- -D warnings
"$CARGO" test --locked -p paysaga-services -p paysaga-http -p payment-saga -p api --features payment-saga/fault-injection,api/local-authorizer

step "local stack: install what is missing"
infra/local/stack.sh install

step "cfn-lint on infra/template.yaml"
make --no-print-directory lint-infra

step "build the functions and local-lambda"
make --no-print-directory build-local

step "static checks: the crates' boundaries, IAM least privilege, CodeUri/environment (each function's --describe-config)/crate metadata, sam validate"
make --no-print-directory check-infra

stack_was_up=false
if infra/local/stack.sh status >/dev/null 2>&1; then
  stack_was_up=true
fi
teardown() {
  local status=$?
  infra/local/system.sh down || status=1
  if [[ $stack_was_up == false ]]; then
    infra/local/stack.sh down || status=1
    # What make test started, it stops: nothing of this checkout may outlive it.
    if pgrep -af -- "$ROOT/(\.local|target)/" >&2; then
      echo "test: ERROR: the processes above outlived the local stack" >&2
      status=1
    fi
  fi
  exit "$status"
}
trap teardown EXIT

step "start the local stack and the functions"
infra/local/stack.sh up
# Restart the functions so they run the binaries just built; no scheduled redrive runs while
# the tests fill and drain the dead-letter queues themselves.
infra/local/system.sh down
PAYSAGA_NO_SCHEDULES=1 infra/local/system.sh up

step "the README's walk-through and put-events blocks, run as a reader runs them"
infra/local/readme_blocks.sh

step "integration tests on the local stack"
"$CARGO" test --locked -p paysaga-tests -- --ignored --show-output

step "deployment artifacts: cargo lambda build --release --arm64"
make --no-print-directory build
# Every function the template defines must have its arm64 bootstrap where its CodeUri points.
for binary in $(python3 -c 'import json, sys; print(*(f["binary"] for f in json.load(sys.stdin)["functions"]))' <.local/wiring.json); do
  artifact="target/lambda/$binary/bootstrap"
  [[ -x $artifact ]] || { echo "$artifact is missing, yet infra/template.yaml deploys it" >&2; exit 1; }
  machine="$(od -An -tx1 -j18 -N2 "$artifact" | tr -d ' \n')"
  [[ $machine == b700 ]] || { echo "$artifact is not an arm64 ELF binary (e_machine $machine)" >&2; exit 1; }
  echo "  $artifact: arm64, $(du -k "$artifact" | cut -f1) KiB"
done

step "cargo lambda deploy --dry reads every function's environment as make deploy-function writes it"
# Needs the bootstraps just built (cargo lambda deploy packages them, even --dry) and the local
# stack's .local/wiring.json (the environments with local values); calls no AWS API.
.local/venv/bin/python infra/deploy/checks/deploy_env.py --self-test
.local/venv/bin/python infra/deploy/checks/deploy_env.py

step "all checks passed"
