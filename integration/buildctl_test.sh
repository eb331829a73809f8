#!/usr/bin/env bash
# The real BuildKit client against kilnd. buildctl is not a Debian package: this test runs when
# one is on PATH or named by $BUILDCTL (built by hand, see README), and skips otherwise.
. "$(dirname "$0")/lib.sh"

BUILDCTL=${BUILDCTL:-$(command -v buildctl || true)}
[ -n "$BUILDCTL" ] && [ -x "$BUILDCTL" ] || skip "buildctl not found (set BUILDCTL)"

start_kilnd main --root "$WORK/root" --addr "unix://$WORK/k.sock"
out=$("$BUILDCTL" --addr "unix://$WORK/k.sock" debug workers)
assert_contains "$out" "$(cat "$WORK/root/workerid")" "buildctl debug workers"
pass "buildctl debug workers lists kilnd's worker"

out=$("$BUILDCTL" --addr "unix://$WORK/k.sock" debug workers --verbose)
assert_contains "$out" "org.mobyproject.buildkit.worker.executor:" "buildctl debug workers -v"
out=$("$BUILDCTL" --addr "unix://$WORK/k.sock" du)
assert_contains "$out" "Total:" "buildctl du"
out=$("$BUILDCTL" --addr "unix://$WORK/k.sock" prune)
assert_contains "$out" "Total:" "buildctl prune"
out=$("$BUILDCTL" --addr "unix://$WORK/k.sock" debug info)
assert_contains "$out" "+kiln." "buildctl debug info"
pass "buildctl du, prune and debug info work"
