#!/usr/bin/env bash
# `make bench`: builds what the bench measures (release binaries for this machine, arm64 zips
# with cargo lambda), starts the local stack and the functions (release builds) when they are
# not up, runs the bench, and stops what it started. Results: stdout and target/bench/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
cd "$ROOT"
CARGO="${CARGO:-cargo}"
started=$SECONDS
step() { printf '\n==> [%4d s] %s\n' "$((SECONDS - started))" "$*" >&2; }

# Options first: `make bench BENCH_ARGS=--help` builds the bench alone (a debug build, quick after
# `make test`) and prints them, before anything is installed, started or built for release.
for arg in "$@"; do
  case "$arg" in
    -h | --help) exec "$CARGO" run --quiet --locked -p paysaga-bench --bin bench -- --help ;;
  esac
done

step "local stack: install what is missing"
infra/local/stack.sh install

# Every function: one crate per directory under functions/, named like it (as in the Makefile).
# Those the Makefile's ABORT_FUNCTIONS names ship built with the release-abort profile
# (Cargo.toml), the others with release: each is measured as it ships.
read -ra abort_functions <<<"${ABORT_FUNCTIONS?run by make bench, which names the functions built with release-abort}"
functions=() unwinding=() aborting=()
for dir in functions/*/; do
  name="$(basename "$dir")"
  functions+=(-p "$name")
  if [[ " ${abort_functions[*]} " == *" $name "* ]]; then
    aborting+=(-p "$name" --bin "$name")
  else
    unwinding+=(-p "$name" --bin "$name")
  fi
done
profile_dir() { [[ " ${abort_functions[*]} " == *" $1 "* ]] && echo release-abort || echo release; }

step "release builds for this machine: the functions, the reference binaries, the tools"
# Three builds, so that the features the tools enable (the SDK's default HTTPS client) are not
# unified into the functions' binaries: each is measured as it ships.
"$CARGO" build --release --locked "${functions[@]}"
if ((${#aborting[@]})); then
  "$CARGO" build --profile release-abort --locked "${aborting[@]}"
fi
# Those are the binaries measured; the stack runs the functions behind the HTTP API with the
# local stand-in for API Gateway's JWT authorizer (there is no gateway locally), a build of its own.
shipped="$ROOT/target/bench/shipped"
rm -rf "$shipped" && mkdir -p "$shipped"
for dir in functions/*/; do
  name="$(basename "$dir")"
  cp "target/$(profile_dir "$name")/$name" "$shipped/"
done
"$CARGO" build --release --locked -p api -p admin-api -p graphql -p wallet-rpc --features api/local-authorizer
"$CARGO" build --release --locked -p paysaga-bench-hello
cp target/release/hello-runtime target/release/hello-sdk "$shipped/" # the reference binaries, beside them
"$CARGO" build --release --locked -p local-lambda -p payment-processor -p paysaga-bench

step "arm64 deployment zips (cargo lambda build --release|--profile release-abort --arm64 --output-format zip)"
rustup target add aarch64-unknown-linux-gnu >/dev/null
if ((${#unwinding[@]})); then
  PATH="$ROOT/.local/venv/bin:$PATH" cargo lambda build --release --arm64 --locked --output-format zip \
    "${unwinding[@]}"
fi
if ((${#aborting[@]})); then
  PATH="$ROOT/.local/venv/bin:$PATH" cargo lambda build --profile release-abort --arm64 --locked \
    --output-format zip "${aborting[@]}"
fi
# --bin everywhere: without it cargo lambda copies every binary under the profile's directory,
# stale ones too (an old build of a function now built with release-abort), to target/lambda/.
PATH="$ROOT/.local/venv/bin:$PATH" cargo lambda build --release --arm64 --locked --output-format zip \
  -p paysaga-bench-hello --bin hello-runtime --bin hello-sdk

stack_was_up=false system_was_up=false
if infra/local/stack.sh status >/dev/null 2>&1; then
  stack_was_up=true
fi
if infra/local/system.sh status 2>/dev/null | grep -q 'local-lambda runs'; then
  system_was_up=true
fi
teardown() {
  local status=$?
  infra/local/system.sh down >/dev/null || status=1
  if [[ $stack_was_up == false ]]; then
    infra/local/stack.sh down || status=1
  elif [[ $system_was_up == true ]]; then
    infra/local/system.sh up >/dev/null || status=1 # as `make run` had left it
  fi
  exit "$status"
}
trap teardown EXIT

step "local stack and the functions (release builds, no schedules)"
infra/local/stack.sh up
infra/local/system.sh down >/dev/null
PAYSAGA_BIN_DIR="$ROOT/target/release" PAYSAGA_NO_SCHEDULES=1 infra/local/system.sh up

step "bench"
# shellcheck disable=SC1091
source .local/stack.env
target/release/bench --bin-dir "$shipped" "$@"
