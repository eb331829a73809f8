#!/usr/bin/env bash
# The real BuildKit client against kilnd. buildctl is not a Debian package: this test runs when
# one is on PATH or named by $BUILDCTL (built by hand, see README), and skips otherwise.
. "$(dirname "$0")/lib.sh"

: "${HELLO_LLB:?HELLO_LLB must name the hello-llb binary}"
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

# A real buildctl build of a definition made by our llb/ library.
mkdir -p "$WORK/ctx/sub"
echo one >"$WORK/ctx/a.txt"
echo two >"$WORK/ctx/sub/b.txt"
"$HELLO_LLB" | "$BUILDCTL" --addr "unix://$WORK/k.sock" build --local context="$WORK/ctx" \
  --output type=local,dest="$WORK/out" --progress=plain 2>"$WORK/progress" ||
  fail "buildctl build failed: $(cat "$WORK/progress")"
[ "$(cat "$WORK/out/a.txt")" = one ] || fail "buildctl build: a.txt missing"
[ "$(cat "$WORK/out/hello.txt")" = "hello from kiln" ] || fail "buildctl build: hello.txt missing"
"$HELLO_LLB" | "$BUILDCTL" --addr "unix://$WORK/k.sock" build --local context="$WORK/ctx" \
  --output type=tar,dest="$WORK/out.tar" --progress=plain 2>"$WORK/progress" ||
  fail "buildctl tar build failed"
grep -q CACHED "$WORK/progress" || fail "buildctl rebuild not cached: $(cat "$WORK/progress")"
tar tf "$WORK/out.tar" | grep -qx "sub/b.txt" || fail "buildctl tarball lacks sub/b.txt"
pass "buildctl build with --local and --output type=local/tar; the rebuild is cached"
