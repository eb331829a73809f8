#!/usr/bin/env bash
# Images as build bases: a busybox image made offline (make-busybox-image) and pushed to a real
# docker-registry on loopback, pulled by tag and by digest through `docker-image://` sources,
# with RUN steps on top; layers are shared and a re-solve is cached.
. "$(dirname "$0")/lib.sh"
: "${RUN_LLB:?RUN_LLB must name the run-llb binary}"
: "${MAKE_BUSYBOX_IMAGE:?MAKE_BUSYBOX_IMAGE must name the make-busybox-image binary}"
[ "$(id -u)" -eq 0 ] || skip "containers need root"
[ -x /bin/busybox ] || skip "busybox-static is not installed"

start_registry registry
digest=$("$MAKE_BUSYBOX_IMAGE" --push "$REGISTRY/library/busybox:latest" --push "$REGISTRY/other/busybox:1") ||
  fail "could not seed the registry"
pass "seeded $REGISTRY with busybox ($digest)"

root="$WORK/root"
sock="unix://$WORK/k.sock"
start_kilnd main --root "$root" --addr "$sock" --debug

run() {  # run SPEC OUTDIR [kiln args...]
  local spec=$1 out=$2; shift 2
  echo "$spec" | "$RUN_LLB" >"$WORK/def" || fail "run-llb rejected: $spec"
  "$KILN" --addr "$sock" build --output type=local,dest="$out" --progress plain "$@" \
    <"$WORK/def" 2>"$WORK/progress"
}

run '{"image":"'"$REGISTRY"'/library/busybox:latest","steps":[{"run":"echo from-image > /hello; ls /bin | wc -l > /count"}]}' "$WORK/o1" ||
  fail "build on the image failed: $(cat "$WORK/progress")"
[ "$(cat "$WORK/o1/hello")" = from-image ] || fail "RUN on the image did not run"
[ "$(cat "$WORK/o1/count")" -gt 100 ] || fail "the image's applets are missing"
[ -x "$WORK/o1/bin/busybox" ] || fail "the image's rootfs is not in the result"
assert_contains "$(cat "$WORK/progress")" "docker-image://$REGISTRY/library/busybox:latest" "progress"
pass "a RUN step on an image pulled by tag"

run '{"image":"'"$REGISTRY"'/library/busybox:latest","steps":[{"run":"echo from-image > /hello; ls /bin | wc -l > /count"}]}' "$WORK/o2" ||
  fail "rebuild failed: $(cat "$WORK/progress")"
[ "$(grep -c CACHED "$WORK/progress")" -ge 2 ] || fail "rebuild not cached: $(cat "$WORK/progress")"
pass "an unchanged rebuild is cached (one manifest request, no downloads)"

run '{"image":"'"$REGISTRY"'/other/busybox@'"$digest"'","steps":[{"run":"cat /etc/passwd > /p"}]}' "$WORK/o3" ||
  fail "build by digest failed: $(cat "$WORK/progress")"
assert_contains "$(cat "$WORK/o3/p")" "root:x:0:0" "image passwd"
layers=$("$KILN" --addr "$sock" du -v | grep -c "pulled layer" || true)
[ "$layers" -eq 1 ] || fail "the same layer was unpacked $layers times: $("$KILN" --addr "$sock" du -v)"
pass "pulled by digest from another repository, sharing the unpacked layer"

rc=0
run '{"image":"'"$REGISTRY"'/library/nosuch:latest","steps":[{"run":"true"}]}' "$WORK/x" || rc=$?
[ "$rc" -ne 0 ] || fail "a missing image built"
assert_contains "$(cat "$WORK/progress")" "nosuch" "missing image error"
assert_contains "$(cat "$WORK/progress")" "not found" "missing image error"
pass "a missing image fails with a message naming it"

kill "$REGISTRY_PID"; wait "$REGISTRY_PID" 2>/dev/null || true
run '{"image":"'"$REGISTRY"'/other/busybox@'"$digest"'","steps":[{"run":"cat /etc/group > /g"}]}' "$WORK/o4" ||
  fail "build by digest with the registry down failed: $(cat "$WORK/progress")"
pass "an image pinned by digest builds offline once its content is here"
