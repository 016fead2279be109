#!/usr/bin/env bash
# The integration tests, on the local stack that is running (`make test` starts its own; `make
# integration` uses the one `make run` left). With cargo-nextest all test binaries run at once,
# and the tests that share a dead-letter queue one at a time (.config/nextest.toml); without it,
# every test one after the other, since `cargo test` knows no such groups.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
CARGO="${CARGO:-cargo}"
FEATURES="${LOCAL_FEATURES:?run through make, which sets LOCAL_FEATURES}"
# The GraphiQL test drives headless Chromium: installed from Debian's packages when missing.
infra/local/stack.sh install-browser

if "$CARGO" nextest --version >/dev/null 2>&1; then
  # --workspace and the same features as the unit tests: the test binaries are already built.
  exec "$CARGO" nextest run --locked --workspace --features "$FEATURES" -E 'package(paysaga-tests)' \
    --run-ignored only --test-threads 4 --no-fail-fast --success-output final --failure-output final
fi
echo "(no cargo-nextest: the tests run one after the other)"
exec "$CARGO" test --locked --workspace --features "$FEATURES" -p paysaga-tests -- --ignored \
  --test-threads 1 --show-output
