#!/usr/bin/env bash
# Registries beyond the happy path, end to end through kilnd and a real docker-registry:
# - broken: connection refused, 500s, blobs cut short and blobs with wrong bytes (fault-proxy in
#   front of the registry). Each build fails with an error naming what broke and leaves no blob
#   or partial download in kilnd's store; a transfer cut short once resumes with a Range request.
# - an index: the host's platform is picked, or the one the LLB asks for.
# - a mirror for docker.io from the daemon config serves `busybox`.
# - a registry with htpasswd (Basic) auth: the kiln client serves credentials from
#   $DOCKER_CONFIG/config.json through the session; push and pull work with them, and fail
#   clearly without them or with a wrong password.
# - a TLS registry with a self-signed certificate: push refused, then allowed with
#   registry.insecure=true.
. "$(dirname "$0")/lib.sh"
: "${RUN_LLB:?RUN_LLB must name the run-llb binary}"
: "${MAKE_BUSYBOX_IMAGE:?MAKE_BUSYBOX_IMAGE must name the make-busybox-image binary}"
: "${FAULT_PROXY:?FAULT_PROXY must name the fault-proxy binary}"
: "${HTPASSWD:?HTPASSWD must name the htpasswd binary}"
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
    # The log may not exist yet: the background shell creates it.
    PROXY=$(sed -n 's/^listening on //p' "$WORK/$name.log" 2>/dev/null || true)
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

# ---- Platform selection from an index ------------------------------------------------------
case "$(uname -m)" in
  x86_64) host_platform=linux/amd64 ;;
  aarch64) host_platform=linux/arm64 ;;
  *) host_platform="" ;;
esac
if [ -n "$host_platform" ]; then
  "$MAKE_BUSYBOX_IMAGE" --push "$REGISTRY/multi/busybox:latest" \
    --platform linux/s390x --platform "$host_platform" --platform linux/arm/v7 >/dev/null ||
    fail "could not push the multi-platform index"
  build_spec() {  # build_spec SPEC OUTDIR
    echo "$1" | "$RUN_LLB" >"$WORK/def" || fail "run-llb rejected $1"
    "$KILN" --addr "$sock" build --output type=local,dest="$2" --progress plain \
      <"$WORK/def" 2>"$WORK/progress"
  }
  build_spec '{"image":"'"$REGISTRY"'/multi/busybox:latest","steps":[{"run":"cat /etc/kiln-platform > /p"}]}' "$WORK/m1" ||
    fail "build on the index failed: $(cat "$WORK/progress")"
  [ "$(cat "$WORK/m1/p")" = "$host_platform" ] || fail "the index gave $(cat "$WORK/m1/p"), not $host_platform"
  build_spec '{"image":"'"$REGISTRY"'/multi/busybox:latest","platform":"linux/arm/v7","steps":[]}' "$WORK/m2" ||
    fail "pulling linux/arm/v7 failed: $(cat "$WORK/progress")"
  [ "$(cat "$WORK/m2/etc/kiln-platform")" = linux/arm/v7 ] ||
    fail "asked for linux/arm/v7, got $(cat "$WORK/m2/etc/kiln-platform")"
  rc=0
  build_spec '{"image":"'"$REGISTRY"'/multi/busybox:latest","platform":"linux/mips64le","steps":[]}' "$WORK/m3" || rc=$?
  [ "$rc" -ne 0 ] || fail "an index without linux/mips64le gave an image"
  for p in linux/mips64le linux/s390x linux/arm/v7; do
    assert_contains "$(cat "$WORK/progress")" "$p" "missing platform error"
  done
  pass "an index gives the host's platform ($host_platform), or the one asked for"
fi

# ---- A mirror for docker.io ----------------------------------------------------------------
cat >"$WORK/mirrored.toml" <<TOML
root = "$WORK/mirrored-root"
[grpc]
address = ["unix://$WORK/mirrored.sock"]
[registry."docker.io"]
mirrors = ["$REGISTRY"]
TOML
start_kilnd mirrored --config "$WORK/mirrored.toml"
echo '{"image":"busybox","steps":[{"run":"echo mirrored > /m"}]}' | "$RUN_LLB" >"$WORK/def"
"$KILN" --addr "unix://$WORK/mirrored.sock" build --output type=local,dest="$WORK/mirrored" \
  --progress plain <"$WORK/def" 2>"$WORK/progress" || fail "build on busybox via the mirror failed: $(cat "$WORK/progress")"
[ "$(cat "$WORK/mirrored/m")" = mirrored ] || fail "the RUN on the mirrored image did not run"
assert_contains "$(cat "$WORK/progress")" "docker-image://docker.io/library/busybox:latest" "progress"
grep -q 'GET /v2/library/busybox/manifests/latest' "$WORK/registry.log" ||
  grep -q 'uri="/v2/library/busybox/manifests/latest"' "$WORK/registry.log" ||
  fail "the mirror was not asked for library/busybox: $(grep -c . "$WORK/registry.log") log lines"
pass "\`busybox\` is docker.io/library/busybox:latest, served by the configured mirror"

# ---- Basic auth with credentials from the client's docker config ---------------------------
plain_registry=$REGISTRY
"$HTPASSWD" alice s3cret >"$WORK/htpasswd" || fail "htpasswd failed"
start_registry authreg --htpasswd "$WORK/htpasswd"
auth_registry=$REGISTRY
docker_config() {  # docker_config DIR USER PASSWORD: a config.json with one `auths` entry
  mkdir -p "$1"
  printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$auth_registry" "$(printf '%s:%s' "$2" "$3" | base64 -w0)" \
    >"$1/config.json"
}
docker_config "$WORK/dc-good" alice s3cret
docker_config "$WORK/dc-bad" alice wrong
mkdir -p "$WORK/dc-none"
echo '{"image":"'"$plain_registry"'/library/busybox:latest","steps":[{"run":"echo authed > /a"}]}' |
  "$RUN_LLB" >"$WORK/def"
rc=0
DOCKER_CONFIG="$WORK/dc-none" "$KILN" --addr "$sock" build --progress plain \
  --output "type=image,name=$auth_registry/private/app:1,push=true" <"$WORK/def" 2>"$WORK/progress" || rc=$?
[ "$rc" -ne 0 ] || fail "pushed to an authenticated registry without credentials"
assert_contains "$(cat "$WORK/progress")" "$auth_registry/private/app" "anonymous push error"
assert_contains "$(cat "$WORK/progress")" "401" "anonymous push error"
DOCKER_CONFIG="$WORK/dc-good" "$KILN" --addr "$sock" build --progress plain \
  --output "type=image,name=$auth_registry/private/app:1,push=true" <"$WORK/def" 2>"$WORK/progress" ||
  fail "push with credentials failed: $(cat "$WORK/progress")"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://$auth_registry/v2/private/app/manifests/1")" = 401 ] ||
  fail "the registry does not ask for credentials"
curl -fsS -o /dev/null -u alice:s3cret -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
  "http://$auth_registry/v2/private/app/manifests/1" || fail "the registry has no private/app:1"
! grep -q 's3cret' "$WORK/main.log" "$WORK/progress" || fail "the password reached a log"
pass "push to a Basic-auth registry with credentials from DOCKER_CONFIG (refused without)"

# Pull on the other daemon, which lacks the pushed layer: its blob is fetched with credentials.
pull_private() {  # pull_private DOCKER_CONFIG_DIR
  echo '{"image":"'"$auth_registry"'/private/app:1","steps":[{"run":"cat /a > /b"}]}' | "$RUN_LLB" >"$WORK/def"
  DOCKER_CONFIG=$1 "$KILN" --addr "unix://$WORK/mirrored.sock" build --progress plain \
    --output type=local,dest="$WORK/private" <"$WORK/def" 2>"$WORK/progress"
}
rc=0; pull_private "$WORK/dc-bad" || rc=$?
[ "$rc" -ne 0 ] || fail "pulled with a wrong password"
assert_contains "$(cat "$WORK/progress")" "$auth_registry/private/app" "wrong password error"
assert_contains "$(cat "$WORK/progress")" "401" "wrong password error"
pull_private "$WORK/dc-good" || fail "pull with credentials failed: $(cat "$WORK/progress")"
[ "$(cat "$WORK/private/b")" = authed ] || fail "the pulled private image lacks the built file"
pass "pull from a Basic-auth registry with credentials; a wrong password fails naming the image"

# ---- TLS with a self-signed certificate, and registry.insecure ------------------------------
command -v openssl >/dev/null || skip "openssl is not installed"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=kiln-test-registry" \
  -addext "subjectAltName=IP:127.0.0.1" -keyout "$WORK/tls.key" -out "$WORK/tls.pem" 2>/dev/null ||
  fail "openssl could not make a certificate"
start_registry tlsreg --tls "$WORK/tls.pem" "$WORK/tls.key"
echo '{"image":"'"$plain_registry"'/library/busybox:latest","steps":[{"run":"echo over-tls > /t"}]}' |
  "$RUN_LLB" >"$WORK/def"
rc=0
"$KILN" --addr "$sock" build --output "type=image,name=$REGISTRY/secure/app:1,push=true" \
  --progress plain <"$WORK/def" 2>"$WORK/progress" || rc=$?
[ "$rc" -ne 0 ] || fail "pushed to a registry with an untrusted certificate"
assert_contains "$(cat "$WORK/progress")" "$REGISTRY" "untrusted certificate error"
assert_contains "$(cat "$WORK/progress")" "certificate" "untrusted certificate error"
"$KILN" --addr "$sock" build --output "type=image,name=$REGISTRY/secure/app:1,push=true,registry.insecure=true" \
  --progress plain <"$WORK/def" 2>"$WORK/progress" ||
  fail "push with registry.insecure=true failed: $(cat "$WORK/progress")"
curl -fsSk -o /dev/null -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
  "https://$REGISTRY/v2/secure/app/manifests/1" || fail "the TLS registry has no secure/app:1"
pass "a self-signed registry refuses the push, registry.insecure=true allows it"
