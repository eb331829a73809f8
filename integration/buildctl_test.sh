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
tar tf "$WORK/out.tar" | grep -x "sub/b.txt" >/dev/null || fail "buildctl tarball lacks sub/b.txt"
pass "buildctl build with --local and --output type=local/tar; the rebuild is cached"

# A Dockerfile error: buildctl prints the lines at fault with context from the status details
# (errdefs.Source), for a parse error and for a failing RUN step (through buildctl's gateway
# path, so the details also survive the client's Return).
mkdir -p "$WORK/df"
make_busybox_rootfs "$WORK/df/rootfs"
printf 'FROM scratch\nCOPY rootfs/ /\nRUN echo ok\nRUN echo failing && \\\n    exit 7\nRUN echo never\n' \
  >"$WORK/df/Dockerfile"
"$BUILDCTL" --addr "unix://$WORK/k.sock" build --frontend dockerfile.v0 --local context="$WORK/df" \
  --local dockerfile="$WORK/df" --progress=plain 2>"$WORK/failing.err" &&
  fail "buildctl: the failing Dockerfile built"
assert_contains "$(cat "$WORK/failing.err")" "Dockerfile:4
--------------------
   3 |     RUN echo ok
   4 | >>> RUN echo failing && \\
   5 | >>>     exit 7
   6 |     RUN echo never
--------------------
error: failed to solve:" "buildctl's error for a failing RUN"
assert_contains "$(cat "$WORK/failing.err")" "exit code: 7" "buildctl's error for a failing RUN"
printf 'FROM scratch\nFROBNICATE now\n' >"$WORK/df/Dockerfile"
"$BUILDCTL" --addr "unix://$WORK/k.sock" build --frontend dockerfile.v0 --local context="$WORK/df" \
  --local dockerfile="$WORK/df" 2>"$WORK/parse.err" && fail "buildctl: the broken Dockerfile built"
assert_contains "$(cat "$WORK/parse.err")" "   2 | >>> FROBNICATE now" "buildctl's error for a parse error"
pass "buildctl shows the Dockerfile lines of a failing step and of a parse error"
