#!/usr/bin/env bash
# docker buildx with the remote driver against kilnd: builder create/inspect/ls/rm, builds with
# local, oci and tar outputs, --target, --build-arg, -f, --no-cache, secrets, ssh forwarding,
# push, registry and inline cache into a fresh daemon, a builder at tcp:// with mutual TLS, du
# and prune. buildx is not a Debian
# package: this test runs when `docker buildx version` works (e.g. a release tag of
# docker/buildx built with CGO_ENABLED=0 GOFLAGS=-mod=vendor go build ./cmd/buildx, installed as
# ~/.docker/cli-plugins/docker-buildx) or $BUILDX names a docker CLI that has it, and skips
# otherwise. The builder lives in a private DOCKER_CONFIG under $WORK; ~/.docker is only read to
# find the plugin. No docker engine is needed.
. "$(dirname "$0")/lib.sh"

DOCKER=${BUILDX:-$(command -v docker || true)}
[ -n "$DOCKER" ] && [ -x "$DOCKER" ] || skip "no docker CLI (set BUILDX)"
"$DOCKER" buildx version >/dev/null 2>&1 || skip "docker buildx not available (set BUILDX)"
# The plugin the CLI found, linked into the private config (system plugin dirs stay searched).
plugin=$("$DOCKER" info --format '{{range .ClientInfo.Plugins}}{{if eq .Name "buildx"}}{{.Path}}{{end}}{{end}}' 2>/dev/null || true)
[ -x "$plugin" ] || plugin="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins/docker-buildx"
export DOCKER_CONFIG="$WORK/docker-config"
mkdir -p "$DOCKER_CONFIG/cli-plugins"
[ -x "$plugin" ] && ln -s "$plugin" "$DOCKER_CONFIG/cli-plugins/docker-buildx"
unset BUILDX_CONFIG BUILDX_BUILDER
"$DOCKER" buildx version >/dev/null 2>&1 || fail "buildx is not found with DOCKER_CONFIG=$DOCKER_CONFIG"
version=$("$DOCKER" buildx version)

start_busybox_registry
make_stages_context "$WORK/ctx"
fresh main

# bx ARGS...: docker buildx against the kiln builder.
bx() { "$DOCKER" buildx --builder kiln "$@"; }
# bxbuild NAME ARGS...: a build of $ctx, progress in $WORK/NAME.progress.
bxbuild() {
  local name=$1; shift
  bx build --progress plain "$@" "$ctx" 2>"$WORK/$name.progress" ||
    fail "buildx build $name failed: $(cat "$WORK/$name.progress")"
}

out=$("$DOCKER" buildx create --name kiln --driver remote "unix://$WORK/k.sock" 2>&1) ||
  fail "buildx create: $out"
out=$(bx inspect --bootstrap 2>&1) || fail "buildx inspect --bootstrap: $out"
assert_contains "$out" "Status:" "buildx inspect"
assert_contains "$out" "running" "buildx inspect"
assert_contains "$out" "+kiln." "buildx inspect (BuildKit version)"
assert_contains "$out" "org.mobyproject.buildkit.worker.executor:" "buildx inspect (labels)"
out=$("$DOCKER" buildx ls 2>&1) || fail "buildx ls: $out"
assert_contains "$out" "unix://$WORK/k.sock" "buildx ls"
pass "buildx ($version) creates a remote builder on kilnd; inspect --bootstrap and ls show it running"

# ---- outputs --------------------------------------------------------------------------------
bxbuild local --output "type=local,dest=$WORK/out-local"
[ "$(cat "$WORK/out-local/final.txt")" = final ] || fail "local output lacks /final.txt"
[ "$(cat "$WORK/out-local/app.out")" = "main source"$'\n'"helper source" ] ||
  fail "local output: wrong /app.out"
[ "$(runs | wc -l)" -eq "$NRUNS" ] || fail "the first build ran $(runs | wc -l) RUN steps: $(runs)"
bxbuild oci --output "type=oci,dest=$WORK/img.oci.tar"
[ "$(runs | wc -l)" -eq "$NRUNS" ] || fail "the rebuild ran RUN steps again: $(runs)"
assert_contains "$(cat "$WORK/oci.progress")" "CACHED" "the rebuild's progress"
listing=$(tar tf "$WORK/img.oci.tar")
assert_contains "$listing" "oci-layout" "the oci tarball"
assert_contains "$listing" "index.json" "the oci tarball"
bxbuild tar --output "type=tar,dest=$WORK/fs.tar"
tar tf "$WORK/fs.tar" | grep -x "final.txt" >/dev/null || fail "the tar output lacks final.txt"
pass "build with --output type=local, type=oci and type=tar; the rebuild is cached"

bxbuild target --target deps --output "type=local,dest=$WORK/out-deps"
[ -f "$WORK/out-deps/deps.out" ] && [ ! -e "$WORK/out-deps/final.txt" ] ||
  fail "--target deps did not stop at the deps stage: $(ls "$WORK/out-deps")"
cat >"$ctx/args.Dockerfile" <<DOCKERFILE
FROM $B
ARG MSG=default
RUN echo "msg=\$MSG" >/msg.txt
DOCKERFILE
bxbuild args1 -f "$ctx/args.Dockerfile" --output "type=local,dest=$WORK/out-args1"
bxbuild args2 -f "$ctx/args.Dockerfile" --build-arg MSG=hello --output "type=local,dest=$WORK/out-args2"
[ "$(cat "$WORK/out-args1/msg.txt")" = msg=default ] || fail "-f: $(cat "$WORK/out-args1/msg.txt")"
[ "$(cat "$WORK/out-args2/msg.txt")" = msg=hello ] || fail "--build-arg: $(cat "$WORK/out-args2/msg.txt")"
assert_contains "$(cat "$WORK/args1.progress")" "load build definition from args.Dockerfile" "-f"
before=$(runs | wc -l)
bxbuild nocache --no-cache --output "type=local,dest=$WORK/out-nocache"
[ "$(runs | wc -l)" -eq "$((before + NRUNS))" ] || fail "--no-cache did not rerun the RUN steps"
pass "--target, -f, --build-arg and --no-cache"

# ---- secrets and ssh ------------------------------------------------------------------------
printf 's3cr3t-value' >"$WORK/secret.txt"
cat >"$ctx/secret.Dockerfile" <<DOCKERFILE
FROM $B
RUN --mount=type=secret,id=foo test "\$(cat /run/secrets/foo)" = s3cr3t-value && echo file >/secret-ok
RUN --mount=type=secret,id=foo,env=FOO test "\$FOO" = s3cr3t-value && echo env >>/secret-ok
DOCKERFILE
bxbuild secret -f "$ctx/secret.Dockerfile" --secret "id=foo,src=$WORK/secret.txt" \
  --output "type=local,dest=$WORK/out-secret"
[ "$(cat "$WORK/out-secret/secret-ok")" = $'file\nenv' ] || fail "the secret was not mounted"
! grep -rq s3cr3t-value "$WORK/out-secret" || fail "the secret leaked into the output"
pass "--secret id=foo,src=FILE reaches RUN --mount=type=secret as a file and as env"

if command -v ssh-agent >/dev/null && command -v ssh-keygen >/dev/null && command -v ssh-add >/dev/null; then
  ssh-agent -D -a "$WORK/agent.sock" >"$WORK/ssh-agent.log" 2>&1 &
  PIDS+=("$!")
  for _ in $(seq 50); do [ -S "$WORK/agent.sock" ] && break; sleep 0.1; done
  ssh-keygen -q -t ed25519 -N '' -f "$WORK/id_test" >/dev/null
  SSH_AUTH_SOCK="$WORK/agent.sock" ssh-add "$WORK/id_test" 2>/dev/null || fail "ssh-add failed"
  cat >"$ctx/ssh.Dockerfile" <<DOCKERFILE
FROM $B
RUN --mount=type=ssh test -S "\$SSH_AUTH_SOCK" && echo "\$SSH_AUTH_SOCK" >/ssh.txt
RUN --mount=type=ssh,id=other,target=/tmp/other.sock test -S /tmp/other.sock && echo ok >/ssh2.txt
DOCKERFILE
  SSH_AUTH_SOCK="$WORK/agent.sock" bxbuild ssh -f "$ctx/ssh.Dockerfile" --ssh default \
    --ssh "other=$WORK/agent.sock" --output "type=local,dest=$WORK/out-ssh"
  [ -s "$WORK/out-ssh/ssh.txt" ] && [ "$(cat "$WORK/out-ssh/ssh2.txt")" = ok ] ||
    fail "the ssh agent socket was not mounted"
  pass "--ssh default and --ssh ID=SOCKET mount the agent socket in RUN --mount=type=ssh"
else
  echo "(ssh-agent not installed: --ssh not tested)"
fi

# ---- --call: frontend subrequests (check, targets, outline) -------------------------------
# bxcall NAME ARGS...: `buildx build --call ...` of $ctx; output (both streams) in $out, status in
# $rc.
bxcall() {
  local name=$1; shift
  rc=0
  out=$(bx build --progress plain "$@" "$ctx" 2>&1) || rc=$?
  printf '%s\n' "$out" >"$WORK/$name.call"
}
before=$(runs | wc -l)
cat >"$ctx/lint.Dockerfile" <<DOCKERFILE
FROM $B as base
RUN echo never >/never.txt
DOCKERFILE
bxcall check-warn --call check -f "$ctx/lint.Dockerfile"
[ "$rc" -eq 1 ] || fail "--call check with a warning exited $rc: $out"
assert_contains "$out" "Check complete, 1 warning has been found!" "--call check"
assert_contains "$out" "WARNING: FromAsCasing - https://docs.docker.com/go/dockerfile/rule/from-as-casing/" "--call check"
assert_contains "$out" "'as' and 'FROM' keywords' casing do not match" "--call check"
assert_contains "$out" "lint.Dockerfile:1" "--call check (the excerpt)"
assert_contains "$out" " >>> FROM $B as base" "--call check (the excerpt)"
bxcall check-clean --check -f "$ctx/args.Dockerfile"
[ "$rc" -eq 0 ] || fail "--check without warnings exited $rc: $out"
assert_contains "$out" "Check complete, no warnings found." "--check"
[ "$(runs | wc -l)" -eq "$before" ] || fail "--call check ran RUN steps: $(runs)"
pass "--call check / --check lint without building: warnings with their lines, exit status 1"

cat >"$ctx/outline.Dockerfile" <<DOCKERFILE
# BASE_IMAGE the image everything builds on
ARG BASE_IMAGE=$B
# base the common layer
FROM \$BASE_IMAGE AS base
# GREETING what to say
ARG GREETING=hello
RUN --mount=type=secret,id=token,required=true --mount=type=ssh true
FROM base AS unrelated
ARG NOT_USED=x
# release the final image
FROM base AS release
RUN true
DOCKERFILE
bxcall targets --call targets -f "$ctx/outline.Dockerfile"
[ "$rc" -eq 0 ] || fail "--call targets exited $rc: $out"
assert_contains "$out" "TARGET            DESCRIPTION" "--call targets"
assert_contains "$out" "base              the common layer" "--call targets"
assert_contains "$out" "unrelated         " "--call targets"
assert_contains "$out" "release (default) the final image" "--call targets"
bxcall outline --call outline -f "$ctx/outline.Dockerfile" --build-arg GREETING=hi
[ "$rc" -eq 0 ] || fail "--call outline exited $rc: $out"
assert_contains "$out" "TARGET:      release" "--call outline"
assert_contains "$out" "DESCRIPTION: the final image" "--call outline"
assert_contains "$out" "BUILD ARG    VALUE" "--call outline"
assert_contains "$out" "BASE_IMAGE   $B" "--call outline"
assert_contains "$out" "GREETING     hi" "--call outline"
assert_contains "$out" "what to say" "--call outline"
[[ "$out" != *NOT_USED* ]] || fail "--call outline lists an arg of a stage release does not use: $out"
assert_contains "$out" "SECRET   REQUIRED" "--call outline"
assert_contains "$out" "token    true" "--call outline"
assert_contains "$out" "SSH       REQUIRED" "--call outline"
bxcall outline-json --call outline,format=json -f "$ctx/outline.Dockerfile" --target base
assert_contains "$out" '"name": "base"' "--call outline,format=json"
assert_contains "$out" '"description": "the common layer"' "--call outline,format=json"
bxcall unsupported --call nonexistent -f "$ctx/outline.Dockerfile"
[ "$rc" -ne 0 ] || fail "--call nonexistent succeeded: $out"
[ "$(runs | wc -l)" -eq "$before" ] || fail "--call ran RUN steps: $(runs)"
pass "--call targets and --call outline list stages, args, secrets and ssh without building"

# ---- push and caches ------------------------------------------------------------------------
accept="application/vnd.oci.image.index.v1+json,application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json"
bxbuild push -t "$R/kiln/buildx:latest" --push --metadata-file "$WORK/push.json"
pushed=$(grep -o '"containerimage.digest": *"sha256:[0-9a-f]*"' "$WORK/push.json" | grep -o 'sha256:[0-9a-f]*')
[ -n "$pushed" ] || fail "no image digest in buildx's metadata: $(cat "$WORK/push.json")"
headers=$(curl -sfI -H "Accept: $accept" "http://$R/v2/kiln/buildx/manifests/latest") ||
  fail "the registry has no kiln/buildx:latest"
assert_contains "$headers" "$pushed" "the pushed manifest's digest"
pass "-t REF --push pushes the image ($pushed)"

bxbuild max1 --cache-to "type=registry,ref=$R/kiln/cache:max,mode=max" \
  --output "type=local,dest=$WORK/out-max1"
curl -sf -H "Accept: $accept" "http://$R/v2/kiln/cache/manifests/max" | grep -q 'application/vnd.buildkit.cacheconfig.v0' ||
  fail "no cache manifest in the registry"
fresh max2
bxbuild max2 --cache-from "type=registry,ref=$R/kiln/cache:max" --output "type=local,dest=$WORK/out-max2"
[ "$(runs | wc -l)" -eq 0 ] || fail "the rebuild from the registry cache ran: $(runs)"
assert_contains "$(cat "$WORK/max2.progress")" "CACHED" "the rebuild from the registry cache"
[ "$(cat "$WORK/out-max2/final.txt")" = final ] || fail "the cached rebuild's output lacks final.txt"
pass "--cache-to type=registry,mode=max; a fresh daemon with --cache-from runs no RUN step"

bxbuild inline1 --cache-to type=inline -t "$R/kiln/inline:latest" --push
fresh inline2
bxbuild inline2 --cache-from "type=registry,ref=$R/kiln/inline:latest" \
  --output "type=local,dest=$WORK/out-inline2"
[ "$(runs | wc -l)" -eq 0 ] || fail "the rebuild from the inline cache ran: $(runs)"
pass "--cache-to type=inline; a fresh daemon with --cache-from the image runs no RUN step"

# ---- without an output ----------------------------------------------------------------------
bxbuild noout
assert_contains "$(cat "$WORK/noout.progress")" "No output specified" "a build without --output"
# --load hands the image to a docker engine; none answers here, so buildx stops reading the
# tarball: the build fails, and the daemon must live on.
rc=0
DOCKER_HOST="unix://$WORK/no-engine.sock" bx build --progress plain --load "$ctx" \
  >"$WORK/load.progress" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "--load without a docker engine succeeded"
assert_contains "$(cat "$WORK/load.progress")" "exporting to docker image format" "--load"
kill -0 "$KPID" 2>/dev/null || fail "kilnd died when buildx --load stopped reading: $(tail -5 "$KLOG")"
pass "no --output keeps the result in the cache (buildx warns); --load without an engine fails cleanly"

# ---- tcp:// with mutual TLS ------------------------------------------------------------------
# buildx's remote driver wraps the connection in TLS itself and offers no ALPN.
if command -v openssl >/dev/null; then
  pki="$WORK/pki"
  mkdir -p "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=ca" -keyout "$pki/ca.key" \
    -out "$pki/ca.pem" 2>/dev/null
  for n in server client; do
    if [ $n = server ]; then
      ext="subjectAltName=IP:127.0.0.1"$'\n'"extendedKeyUsage=serverAuth"
    else
      ext="extendedKeyUsage=clientAuth"
    fi
    printf '%s\n' "$ext" >"$pki/$n.ext"
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$n" -keyout "$pki/$n.key" -out "$pki/$n.csr" 2>/dev/null
    openssl x509 -req -in "$pki/$n.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial \
      -days 1 -extfile "$pki/$n.ext" -out "$pki/$n.pem" 2>/dev/null
  done
  start_kilnd tls --debug --root "$WORK/tls-root" --addr "tcp://127.0.0.1:0" \
    --tlscert "$pki/server.pem" --tlskey "$pki/server.key" --tlscacert "$pki/ca.pem"
  tls_pid=$KILND_PID
  out=$("$DOCKER" buildx create --name kilntls --driver remote \
    --driver-opt "cacert=$pki/ca.pem,cert=$pki/client.pem,key=$pki/client.key,servername=127.0.0.1" \
    "$KILND_ADDR" 2>&1) || fail "buildx create (tcp): $out"
  out=$("$DOCKER" buildx --builder kilntls inspect --bootstrap 2>&1) ||
    fail "buildx inspect --bootstrap over mTLS: $out"
  assert_contains "$out" "running" "buildx inspect over mTLS"
  "$DOCKER" buildx --builder kilntls build --progress plain --output "type=local,dest=$WORK/out-tls" \
    "$ctx" 2>"$WORK/tls.progress" || fail "buildx build over mTLS failed: $(cat "$WORK/tls.progress")"
  [ "$(cat "$WORK/out-tls/final.txt")" = final ] || fail "the mTLS build's output lacks final.txt"
  "$DOCKER" buildx rm kilntls >/dev/null 2>&1 || fail "buildx rm kilntls"
  stop_kilnd "$tls_pid"
  pass "a remote builder at tcp:// with mutual TLS: inspect --bootstrap and a build"
else
  echo "(openssl not installed: tcp:// with TLS not tested)"
fi

# ---- du, prune, rm --------------------------------------------------------------------------
out=$(bx du 2>&1) || fail "buildx du: $out"
assert_contains "$out" "Total:" "buildx du"
assert_contains "$(bx du --verbose 2>&1)" "Description:" "buildx du --verbose"
out=$(bx prune -f 2>&1) || fail "buildx prune -f: $out"
assert_contains "$out" "Total:" "buildx prune -f"
out=$(bx prune -af 2>&1) || fail "buildx prune -af: $out"
out=$(bx du 2>&1) || fail "buildx du: $out"
assert_contains "$out" "Reclaimable:"$'\t'"0B" "buildx du after prune -af"
pass "buildx du and prune (-f, -af)"

out=$("$DOCKER" buildx rm kiln 2>&1) || fail "buildx rm: $out"
out=$("$DOCKER" buildx ls 2>&1) || true
case "$out" in *"$WORK/k.sock"*) fail "buildx ls still lists the removed builder: $out" ;; esac
stop_kilnd "$KPID"
pass "buildx rm removes the builder; kilnd stops cleanly"
