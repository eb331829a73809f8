#!/usr/bin/env bash
# A broken registry, end to end through kilnd: connection refused, 500s, blobs cut short and
# blobs with wrong bytes (fault-proxy in front of a real docker-registry). Each build must fail
# with an error naming what broke, and leave no blob or partial download in kilnd's store; a
# transfer cut short once resumes with a Range request and succeeds.
. "$(dirname "$0")/lib.sh"
: "${RUN_LLB:?RUN_LLB must name the run-llb binary}"
: "${MAKE_BUSYBOX_IMAGE:?MAKE_BUSYBOX_IMAGE must name the make-busybox-image binary}"
: "${FAULT_PROXY:?FAULT_PROXY must name the fault-proxy binary}"
[ "$(id -u)" -eq 0 ] || skip "containers need root"
[ -x /bin/busybox ] || skip "busybox-static is not installed"

start_registry registry
"$MAKE_BUSYBOX_IMAGE" --push "$REGISTRY/library/busybox:latest" >/dev/null || fail "could not seed the registry"
manifest=$(curl -fsS -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
  -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
  "http://$REGISTRY/v2/library/busybox/manifests/latest") || fail "the registry has no busybox"
layer=$(echo "$manifest" | grep -o 'sha256:[0-9a-f]\{64\}' | sed -n 2p)  # config, then the layer
[ -n "$layer" ] || fail "no layer in $manifest"

root="$WORK/root"
sock="unix://$WORK/k.sock"
start_kilnd main --root "$root" --addr "$sock"

# start_proxy NAME ARGS...: fault-proxy in front of the registry; sets PROXY (host:port).
start_proxy() {
  local name=$1; shift
  "$FAULT_PROXY" --upstream "$REGISTRY" "$@" >"$WORK/$name.log" 2>&1 &
  PIDS+=("$!")
  for _ in $(seq 50); do
    PROXY=$(sed -n 's/^listening on //p' "$WORK/$name.log")
    [ -n "$PROXY" ] && return 0
    sleep 0.1
  done
  fail "fault-proxy $name did not start: $(cat "$WORK/$name.log")"
}

# pull_via HOST: builds a RUN step on HOST/library/busybox:latest; progress in $WORK/progress.
pull_via() {
  echo '{"image":"'"$1"'/library/busybox:latest","steps":[{"run":"echo ok > /ok"}]}' |
    "$RUN_LLB" >"$WORK/def" || fail "run-llb failed"
  "$KILN" --addr "$sock" build --output type=local,dest="$WORK/out" --progress plain \
    <"$WORK/def" 2>"$WORK/progress"
}

# expect_clean_failure WHAT NEEDLE...: the last build failed, its output names every NEEDLE,
# and the store holds neither the layer nor any partial download.
expect_clean_failure() {
  local what=$1 rc=$2; shift 2
  [ "$rc" -ne 0 ] || fail "$what: the build succeeded"
  local out
  out=$(cat "$WORK/progress")
  for needle in "$@"; do assert_contains "$out" "$needle" "$what error"; done
  [ ! -e "$root/content/blobs/sha256/${layer#sha256:}" ] || fail "$what: the layer blob was stored"
  [ -z "$(ls -A "$root/content/ingest" 2>/dev/null)" ] ||
    fail "$what: partial downloads left: $(ls -lR "$root/content/ingest")"
}

# Connection refused: a port nobody listens on.
port=$(( (${REGISTRY##*:} + 1000 - 20000) % 20000 + 20000 ))
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
rc=0; pull_via "127.0.0.1:$port" || rc=$?
expect_clean_failure "connection refused" "$rc" "127.0.0.1:$port" "onnection refused"
pass "connection refused names the registry"

start_proxy p500 --fault status=500 --match /blobs/
rc=0; pull_via "$PROXY" || rc=$?
expect_clean_failure "500" "$rc" "500" "injected by fault-proxy" "$PROXY"
[ "$(grep -c ' -> status=500' "$WORK/p500.log")" -ge 2 ] || fail "a 500 was not retried: $(cat "$WORK/p500.log")"
pass "a registry answering 500 fails after retries, with its message"

start_proxy cut --fault truncate --match "/blobs/$layer"
rc=0; pull_via "$PROXY" || rc=$?
expect_clean_failure "truncated" "$rc" "$layer" "closed before the whole body arrived"
grep -q "range=bytes=" "$WORK/cut.log" || fail "the cut transfer was not resumed: $(cat "$WORK/cut.log")"
pass "a blob always cut short fails naming it, with nothing kept"

start_proxy bad --fault corrupt --match "/blobs/$layer"
rc=0; pull_via "$PROXY" || rc=$?
expect_clean_failure "wrong digest" "$rc" "$layer" "digest mismatch"
pass "a blob with wrong bytes fails verification, with nothing kept"

start_proxy once --fault truncate --match "/blobs/$layer" --times 1
pull_via "$PROXY" || fail "a transfer cut once did not resume: $(cat "$WORK/progress")"
[ "$(cat "$WORK/out/ok")" = ok ] || fail "the build after a resumed pull did not run"
grep -q "/blobs/$layer range=bytes=[1-9]" "$WORK/once.log" ||
  fail "no resuming Range request: $(cat "$WORK/once.log")"
[ -e "$root/content/blobs/sha256/${layer#sha256:}" ] || fail "the resumed layer is not stored"
pass "a blob cut short once resumes with a Range request"
