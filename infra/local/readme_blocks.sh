#!/usr/bin/env bash
# Runs the README's walk-through and its put-events block the way a reader does: the text between
# the markers, pasted into bash from the checkout's root, against the running local stack (make
# run, or make test's own). Fails when a block fails or when what it shows is not what the README
# promises: both payments finished (not PENDING), Alice's deposit, Bob's 403 and the 401.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
block() { sed -n "/<!-- $1:start -->/,/<!-- $1:end -->/p" README.md | grep -v -e '^<!--' -e '^```'; }

failed=0
check() { # check BLOCK OUTPUT PATTERN WHAT
  if grep -qE -- "$3" <<<"$2"; then echo "  ok: $1 shows $4"; else echo "  FAILED: $1 does not show $4 (/$3/)" >&2; failed=1; fi
}
refuse() { # refuse BLOCK OUTPUT PATTERN WHAT
  if grep -qE -- "$3" <<<"$2"; then echo "  FAILED: $1 shows $4 (/$3/)" >&2; failed=1; else echo "  ok: $1 does not show $4"; fi
}

# One shell for both, as a reader pastes one block after the other: put-events uses the
# walk-through's $alice and `settled`. A marker line tells their outputs apart.
walkthrough="$(block walkthrough)" put_events="$(block put-events)"
[[ -n $walkthrough && -n $put_events ]] || { echo "README.md lacks its walkthrough or put-events block" >&2; exit 1; }
marker="--- put-events block ---"
all="$(bash -euo pipefail -c "$walkthrough"$'\n'"echo '$marker'"$'\n'"$put_events" 2>&1)" ||
  { echo "$all" >&2; echo "the README's blocks failed" >&2; exit 1; }
for name in walkthrough put-events; do
  echo "README block '$name':"
  if [[ $name == walkthrough ]]; then output="${all%%"$marker"*}"; else output="${all#*"$marker"}"; fi
  case $name in
    walkthrough)
      check "$name" "$output" '"payment_id":"[^"]+".*"status":"(COMPLETED|FAILED)"' "the payment finished"
      check "$name" "$output" '"code":"forbidden"' "Alice's 403 on Bob's wallet"
      check "$name" "$output" '^\{"message":"Unauthorized"\}$' "the 401 without a token"
      check "$name" "$output" '"wallet_id":"wal_demo_bob"' "Bob's wallet"
      ;;
    put-events)
      check "$name" "$output" '"FailedEntryCount": 0' "the event accepted by the bus"
      check "$name" "$output" '"payment_id":"pay_demo_cli_0001".*"status":"(COMPLETED|FAILED)"' "the payment finished"
      ;;
  esac
  refuse "$name" "$output" '"status":"PENDING"' "a payment still PENDING"
done
((failed == 0)) || { echo "$all" >&2; echo "the README's blocks do not do what the README says (above)" >&2; exit 1; }
echo "the README's walk-through and put-events blocks work as written"
