#!/usr/bin/env bash
# Malformed input is rejected with a clear error and never takes the daemon down: random bytes
# and a truncated Definition on stdin, a Definition whose op names a missing input, and broken
# Dockerfiles (no FROM, an unknown instruction, a bad --mount, an unterminated heredoc, a stage
# that does not exist). The daemon answers normally afterwards.
. "$(dirname "$0")/../lib.sh"
: "${HELLO_LLB:?HELLO_LLB must name the hello-llb binary}"
sock="unix://$WORK/k.sock"
start_kilnd main --root "$WORK/root" --addr "$sock"
k() { "$KILN" --addr "$sock" "$@"; }

# expect_error NAME TEXT: the build whose stderr is in $WORK/NAME.err failed and said TEXT.
expect_error() {
  [ "$rc" -ne 0 ] || fail "$1: the build succeeded"
  assert_contains "$(cat "$WORK/$1.err")" "$2" "$1"
  kill -0 "$KILND_PID" 2>/dev/null || fail "$1: kilnd died: $(tail -5 "$WORK/main.log")"
}

mkdir -p "$WORK/ctx"
echo hi >"$WORK/ctx/hi.txt"
defbuild() {  # defbuild NAME < definition
  rc=0
  k build --progress plain --local context="$WORK/ctx" --output "type=local,dest=$WORK/$1" \
    >/dev/null 2>"$WORK/$1.err" || rc=$?
}

head -c 4096 /dev/urandom >"$WORK/random.pb"
defbuild random <"$WORK/random.pb"
expect_error random "definition"
"$HELLO_LLB" >"$WORK/hello.pb"
head -c 40 "$WORK/hello.pb" >"$WORK/half.pb"  # inside the first op
defbuild half <"$WORK/half.pb"
expect_error half "definition"
: >"$WORK/empty.pb"
defbuild empty <"$WORK/empty.pb"
[ "$rc" -eq 0 ] || assert_contains "$(cat "$WORK/empty.err")" "definition" "empty"
pass "random bytes and a truncated Definition are refused, naming the definition"

dfbuild() {  # dfbuild NAME DOCKERFILE-TEXT
  printf '%s\n' "$2" >"$WORK/ctx/Dockerfile"
  rc=0
  k build --progress plain --output "type=local,dest=$WORK/$1" "$WORK/ctx" >/dev/null 2>"$WORK/$1.err" || rc=$?
}
dfbuild nofrom "RUN echo hi"
expect_error nofrom "FROM"
dfbuild unknown "FROM scratch
FROBNICATE now"
expect_error unknown "unknown instruction"
expect_error unknown "line 2"
# The error shows the Dockerfile lines around the one at fault, as buildctl and buildx do.
expect_error unknown "Dockerfile:2
--------------------
   1 |     FROM scratch
   2 | >>> FROBNICATE now
   3 |     
--------------------"
dfbuild badmount "FROM scratch
RUN --mount=type=nosuch,target=/x true"
expect_error badmount "nosuch"
dfbuild heredoc "FROM scratch
COPY <<EOF /x
never ends"
expect_error heredoc "unterminated heredoc"
dfbuild target "FROM scratch AS a
COPY hi.txt /"
rc=0
k build --progress plain --target nosuch --output "type=local,dest=$WORK/t" "$WORK/ctx" >/dev/null 2>"$WORK/target.err" || rc=$?
expect_error target "nosuch"
pass "broken Dockerfiles fail with the problem and its line"

# A failing step: its lines (all of a continued RUN) with context, and the exit code.
make_busybox_rootfs "$WORK/ctx/rootfs"
dfbuild failing "FROM scratch
COPY rootfs/ /
RUN echo ok
RUN echo failing && \\
    exit 7
RUN echo never"
expect_error failing "Dockerfile:4
--------------------
   3 |     RUN echo ok
   4 | >>> RUN echo failing && \\
   5 | >>>     exit 7
   6 |     RUN echo never
--------------------"
expect_error failing "did not complete successfully: exit code: 7"
rm -rf "$WORK/ctx/rootfs"
pass "a failing RUN step shows its Dockerfile lines with context"

k du >/dev/null || fail "kilnd stopped answering after the malformed builds"
dfbuild fine "FROM scratch
COPY hi.txt /"
[ "$rc" -eq 0 ] && [ "$(cat "$WORK/fine/hi.txt")" = hi ] || fail "a good build after the bad ones failed: $(cat "$WORK/fine.err")"
pass "the daemon keeps serving after malformed input"
