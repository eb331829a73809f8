#!/usr/bin/env bash
# kilnd on a temp root and socket, driven through the kiln CLI: workers, du, prune, version,
# the root lock, clean shutdown, and errors for an unreachable daemon.
. "$(dirname "$0")/lib.sh"

root="$WORK/root"
sock="$WORK/kilnd.sock"
start_kilnd main --root "$root" --addr "unix://$sock"
[ "$KILND_ADDR" = "unix://$sock" ] || fail "unexpected address $KILND_ADDR"
[ -S "$sock" ] || fail "no socket at $sock"
[ "$(stat -c %a "$sock")" = "660" ] || fail "socket mode is $(stat -c %a "$sock"), want 660"

out=$("$KILN" --addr "unix://$sock" debug workers)
worker_id=$(cat "$root/workerid")
assert_contains "$out" "ID" "debug workers"
assert_contains "$out" "PLATFORMS" "debug workers"
assert_contains "$out" "$worker_id" "debug workers"
assert_contains "$out" "linux/" "debug workers"
pass "debug workers lists worker $worker_id"

out=$("$KILN" --addr "unix://$sock" debug workers --verbose)
assert_contains "$out" "org.mobyproject.buildkit.worker.executor:" "debug workers -v"
assert_contains "$out" "GC Policy rule#0:" "debug workers -v"
pass "debug workers --verbose shows labels and GC policy"

# The environment picks the address when no flag is given.
out=$(KILN_HOST="unix://$sock" "$KILN" debug workers)
assert_contains "$out" "$worker_id" "debug workers via KILN_HOST"
out=$(BUILDKIT_HOST="unix://$sock" "$KILN" debug workers)
assert_contains "$out" "$worker_id" "debug workers via BUILDKIT_HOST"
pass "KILN_HOST and BUILDKIT_HOST are honoured"

out=$("$KILN" --addr "unix://$sock" du)
assert_contains "$out" "RECLAIMABLE" "du"
assert_contains "$out" "Total:" "du"
pass "du works on an empty root"

out=$("$KILN" --addr "unix://$sock" prune --all --keep-duration 1h)
assert_contains "$out" "Total:" "prune"
pass "prune works on an empty root"

if err=$("$KILN" --addr "unix://$sock" du --filter 'id~=(' 2>&1); then
  fail "du with a bad filter succeeded"
fi
assert_contains "$err" "invalid filter" "du with a bad filter"
pass "a bad filter is a clear error"

out=$("$KILN" --addr "unix://$sock" version)
assert_contains "$out" "server: " "version"
assert_contains "$out" "+kiln." "version"
pass "version reports client and daemon"

# A second daemon on the same root refuses to start and names the root.
rc=0
err=$("$KILND" --root "$root" --addr "unix://$WORK/other.sock" 2>&1) || rc=$?
[ "$rc" -ne 0 ] || fail "second kilnd on the same root started"
assert_contains "$err" "another kilnd is already using the state root $root" "second kilnd"
[ ! -e "$WORK/other.sock" ] || fail "second kilnd left a socket behind"
pass "second daemon on the same root refuses to start"

# A second daemon on another root but the same socket refuses too.
rc=0
err=$("$KILND" --root "$WORK/root2" --addr "unix://$sock" 2>&1) || rc=$?
[ "$rc" -ne 0 ] || fail "second kilnd on the same socket started"
assert_contains "$err" "already listening on $sock" "second kilnd on same socket"
pass "second daemon on the same socket refuses to start"

# The first daemon is unharmed.
"$KILN" --addr "unix://$sock" debug workers >/dev/null || fail "first daemon stopped answering"

stop_kilnd "$KILND_PID"
[ ! -e "$sock" ] || fail "socket $sock still exists after SIGTERM"
grep -q "received SIGTERM, shutting down" "$WORK/main.log" || fail "no shutdown log line"
pass "SIGTERM shuts down cleanly and removes the socket"

# SIGINT works the same way, and the lock is released for the next daemon.
start_kilnd again --root "$root" --addr "unix://$sock"
[ "$(cat "$root/workerid")" = "$worker_id" ] || fail "worker id changed across restarts"
kill -INT "$KILND_PID"
wait "$KILND_PID" || fail "kilnd exited nonzero after SIGINT"
[ ! -e "$sock" ] || fail "socket still exists after SIGINT"
pass "SIGINT shuts down cleanly; worker id is stable across restarts"

# No daemon: one clear line naming the address, nonzero exit.
rc=0
err=$("$KILN" --addr "unix://$sock" debug workers 2>&1) || rc=$?
[ "$rc" -ne 0 ] || fail "kiln succeeded without a daemon"
[ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] || fail "expected one line, got: $err"
assert_contains "$err" "cannot reach kilnd at unix://$sock" "unreachable daemon"
pass "unreachable daemon: one line naming the address"
