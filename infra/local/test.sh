#!/usr/bin/env bash
# `make test`: every check, from nothing. Installs what is missing, starts its own local stack
# (or reuses one `make run` left running), runs the integration tests on it, and stops what it
# started, whatever happens. Exits non-zero on any failure.
#
# On 2 cores the builds are the cost, so there are as few as can be: the unit tests, the local
# stack's binaries and the integration tests come out of one debug build with one feature set
# (LOCAL_FEATURES, from the Makefile); the arm64 release build of what deploys runs at the lowest
# CPU priority from the end of the install on, beside what uses one core or waits (the static
# checks, the stack's start, the integration tests); the integration
# tests run all at once (cargo-nextest), those that share a dead-letter queue one at a time
# (.config/nextest.toml).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
CARGO="${CARGO:-cargo}"
FEATURES="${LOCAL_FEATURES:?run through make test, which sets LOCAL_FEATURES}"
# build-local (and check-infra, which needs its binaries) builds every target: after the test
# build, that is nothing left to compile.
export LOCAL_BUILD="--workspace --all-targets"

started=$SECONDS
step() { printf '\n==> [%4d s] %s\n' "$((SECONDS - started))" "$*"; }

step "format check"
"$CARGO" fmt --all -- --check

step "clippy (warnings are errors), with the local stack's features and, where code differs, without"
"$CARGO" clippy --workspace --all-targets --locked --features "$FEATURES" -- -D warnings
"$CARGO" clippy -p paysaga-services -p paysaga-http --all-targets --locked -- -D warnings

step "unit and handler tests"
"$CARGO" test --workspace --locked --features "$FEATURES"

step "local stack: install what is missing (and Chromium for the GraphiQL test)"
infra/local/stack.sh install
infra/local/stack.sh install-browser

stack_was_up=false
if infra/local/stack.sh status >/dev/null 2>&1; then
  stack_was_up=true
fi
arm64_build="" arm64_log="$ROOT/.local/logs/arm64-build.log"
teardown() {
  local status=$?
  if [[ -n $arm64_build ]]; then
    kill -- "-$arm64_build" 2>/dev/null && wait "$arm64_build" 2>/dev/null || true
  fi
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

step "deployment artifacts: cargo lambda build --release --arm64, in the background at the lowest priority (log: $arm64_log)"
mkdir -p "$(dirname "$arm64_log")"
setsid nice -n 19 make --no-print-directory build >"$arm64_log" 2>&1 &
arm64_build=$!

step "cfn-lint on infra/template.yaml"
make --no-print-directory lint-infra

step "build the functions and local-lambda"
make --no-print-directory build-local

step "static checks: the crates' boundaries, IAM least privilege, CodeUri/environment (each function's --describe-config)/crate metadata, sam validate"
make --no-print-directory check-infra

step "start the local stack and the functions"
infra/local/stack.sh up
# Restart the functions so they run the binaries just built; no scheduled redrive runs while
# the tests fill and drain the dead-letter queues themselves.
infra/local/system.sh down
PAYSAGA_NO_SCHEDULES=1 infra/local/system.sh up

step "integration tests on the local stack (the README's walk-through among them, run verbatim)"
infra/local/integration.sh

step "deployment artifacts: waiting for the arm64 build"
if ! wait "$arm64_build"; then
  arm64_build=""
  cat "$arm64_log" >&2
  echo "the arm64 release build failed (above)" >&2
  exit 1
fi
arm64_build=""
tail -n 3 "$arm64_log"
# Every function the template defines must have its arm64 bootstrap where its CodeUri points.
for binary in $(target/debug/local-lambda wiring binaries); do
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
