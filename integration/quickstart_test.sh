#!/usr/bin/env bash
# The quick start's main job (examples/hello/build.sh) through the default address: `kiln
# build` finds no kilnd at unix:///run/kiln/kilnd.sock, starts one on /var/lib/kiln, says
# where and how to stop it, and builds the example (cache mount and secret) into an OCI
# tarball. The test runs in its own mount namespace with a tmpfs on /run/kiln and a scratch
# directory on /var/lib/kiln, so the machine's own daemon and state are never touched.
if [ -z "${KILN_QUICKSTART_NS:-}" ]; then
  mkdir -p /run/kiln /var/lib/kiln
  exec env KILN_QUICKSTART_NS=1 unshare -m --propagation private bash "$0" "$@"
fi
. "$(dirname "$0")/lib.sh"

[ -x /bin/busybox ] || skip "busybox-static is not installed"
mkdir -p "$WORK/state"
mount -t tmpfs -o mode=0755 tmpfs /run/kiln
mount --bind "$WORK/state" /var/lib/kiln
unset KILN_HOST BUILDKIT_HOST
repo=$(cd "$(dirname "$0")/.." && pwd)
# Whatever daemon kiln starts is stopped when the test ends (its pid is in the state root's lock).
stop_started() {
  local pid
  pid=$(cat "$WORK/state/kilnd.lock" 2>/dev/null || true)
  [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
}
trap 'stop_started; cleanup' EXIT

out=$("$KILN" daemon status) && fail "daemon status with no daemon exited 0: $out"
assert_contains "$out" "no kilnd is running on /var/lib/kiln" "kiln daemon status"

bash "$repo/examples/hello/build.sh" "$KILN" "$WORK/hello" >"$WORK/build1.log" 2>&1 ||
  fail "the quick start build failed: $(cat "$WORK/build1.log")"
log=$(cat "$WORK/build1.log")
assert_contains "$log" "no kilnd was running at unix:///run/kiln/kilnd.sock, so kiln started one" \
  "the first build's output"
assert_contains "$log" "state in /var/lib/kiln, log /var/lib/kiln/kilnd.log" "the first build's output"
assert_contains "$log" 'stop it with `kiln daemon stop`' "the first build's output"
[ -S /run/kiln/kilnd.sock ] || fail "no socket at /run/kiln/kilnd.sock"
pid=$(cat "$WORK/state/kilnd.lock")
[ "$(cat "/proc/$pid/comm")" = kilnd ] || fail "the state root's lock names pid $pid, not a kilnd"
grep -q "listening on unix:///run/kiln/kilnd.sock" "$WORK/state/kilnd.log" ||
  fail "the started daemon's log is not in /var/lib/kiln/kilnd.log"
pass "kiln build started kilnd at the default address and said where and how to stop it"

# The image: the message the RUN step wrote, and no trace of the token.
message() {
  local tar=$1 dir
  dir=$(mktemp -d "$WORK/oci.XXXXXX")
  tar xf "$tar" -C "$dir"
  for blob in "$dir"/blobs/sha256/*; do
    tar xzOf "$blob" app/message 2>/dev/null && break
  done
}
msg=$(message "$WORK/hello/hello-image.oci.tar")
assert_contains "$msg" "hello from kiln, built on" "the image's /app/message"
assert_contains "$msg" "signed with a token of 48 bytes" "the image's /app/message"
assert_contains "$msg" "build number 1 on this builder" "the image's /app/message"
token=$(cat "$WORK/hello/hello-token")
for f in "$WORK"/oci.*/blobs/sha256/*; do
  { zcat -f "$f"; } 2>/dev/null | grep -aF "$token" >/dev/null && fail "the token is in blob $f"
done
grep -qaF "$token" "$WORK/build1.log" && fail "the token is in the build output"
grep -rlaF "$token" "$WORK/state" && fail "the token is in the daemon's state root"
assert_contains "$log" "digest: sha256:" "the build script's output"
pass "the example image holds the RUN step's message and no trace of the secret"

# The daemon keeps running: the next builds use it. With --no-cache the RUN step runs again
# and the cache mount's counter shows the mount survived.
bash "$repo/examples/hello/build.sh" "$KILN" "$WORK/hello" --no-cache >"$WORK/build2.log" 2>&1 ||
  fail "the second build failed: $(cat "$WORK/build2.log")"
grep -q "kiln started one" "$WORK/build2.log" && fail "the second build started another daemon"
[ "$(cat "$WORK/state/kilnd.lock")" = "$pid" ] || fail "the daemon changed"
assert_contains "$(message "$WORK/hello/hello-image.oci.tar")" "build number 2 on this builder" \
  "the rebuilt image's /app/message"
pass "the next build reuses the daemon, and the cache mount persists"

out=$("$KILN" daemon status)
assert_contains "$out" "kilnd is running (pid $pid) at unix:///run/kiln/kilnd.sock" "kiln daemon status"
out=$("$KILN" daemon stop)
assert_contains "$out" "kilnd (pid $pid) stopped" "kiln daemon stop"
# (A zombie is not running: kilnd's parent, the first kiln, is gone, so init reaps it.)
[ -r "/proc/$pid/stat" ] && [ "$(cut -d' ' -f3 "/proc/$pid/stat")" != Z ] &&
  fail "kilnd $pid still runs after kiln daemon stop"
out=$("$KILN" daemon stop 2>&1) && fail "a second stop exited 0"
assert_contains "$out" "no kilnd is running on the state root /var/lib/kiln" "a second kiln daemon stop"
pass "kiln daemon status and stop"

# Two builds at once with no daemon: one kilnd starts, both builds succeed.
mkdir -p "$WORK/ctx"
printf 'FROM scratch\nCOPY a /a\n' >"$WORK/ctx/Dockerfile"
echo hi >"$WORK/ctx/a"
for i in 1 2; do
  "$KILN" build --progress plain -o type=local,dest="$WORK/out$i" "$WORK/ctx" >"$WORK/race$i.log" 2>&1 &
done
wait %1 || fail "concurrent build 1 failed: $(cat "$WORK/race1.log")"
wait %2 || fail "concurrent build 2 failed: $(cat "$WORK/race2.log")"
[ "$(cat "$WORK/out1/a")" = hi ] && [ "$(cat "$WORK/out2/a")" = hi ] || fail "concurrent outputs"
[ "$(grep -l "kiln started one" "$WORK"/race*.log | wc -l)" -eq 1 ] ||
  fail "want exactly one build to say it started kilnd: $(cat "$WORK"/race*.log)"
pass "two builds at once with no daemon start one kilnd and both succeed"

# Not root: kiln says why it does not start a daemon.
"$KILN" daemon stop >/dev/null
if command -v setpriv >/dev/null; then
  out=$(setpriv --reuid 65534 --regid 65534 --clear-groups "$KILN" build "$WORK/ctx" 2>&1) &&
    fail "a non-root build with no daemon exited 0"
  assert_contains "$out" "kiln starts one only as root" "a non-root build with no daemon"
  pass "a non-root kiln build explains that it starts kilnd only as root"
fi
