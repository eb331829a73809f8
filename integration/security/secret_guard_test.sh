#!/usr/bin/env bash
# The secret leak guard, end to end: kilnd knows the secrets a build mounts and the values of
# build args whose names look secret, and scans what it is about to export. A RUN that copies a
# mounted secret into the image, and a secret build arg that lands in the history, are reported
# (naming the layer, the path and the secret id, never the value); with --opt secret-scan=error
# the build fails before anything is pushed. A build that uses its secret properly gets no
# warning.
. "$(dirname "$0")/../lib.sh"
start_busybox_registry
sock="unix://$WORK/k.sock"
start_kilnd main --root "$WORK/root" --addr "$sock"

token="npm-token-$RANDOM$RANDOM$RANDOM"
printf '%s' "$token" >"$WORK/npmrc"
ctx=$WORK/ctx
mkdir -p "$ctx"

# ---- a mounted secret copied into a layer ------------------------------------------------------
cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $B
RUN --mount=type=secret,id=npm cp /run/secrets/npm /root-npmrc && echo built >/built
DOCKERFILE
k build --progress plain --secret "id=npm,src=$WORK/npmrc" --output "type=image,name=$R/leak:1,push=true" \
  "$ctx" 2>"$WORK/leak.progress" || fail "the leaking build failed: $(cat "$WORK/leak.progress")"
out=$(cat "$WORK/leak.progress")
assert_contains "$out" "WARNING" "leak warning"
assert_contains "$out" "secret npm found in the result's layer" "leak warning"
assert_contains "$out" "at /root-npmrc" "leak warning path"
case "$out" in *"$token"*) fail "the warning printed the secret's value" ;; esac
pass "a secret copied into a layer is reported with its layer, path and id (not its value)"

# ---- the same with secret-scan=error: nothing is pushed ----------------------------------------
rc=0
k build --progress plain --secret "id=npm,src=$WORK/npmrc" --opt secret-scan=error \
  --output "type=image,name=$R/leak:2,push=true" "$ctx" 2>"$WORK/leak2.progress" || rc=$?
[ "$rc" -ne 0 ] || fail "secret-scan=error let a leaking build succeed"
assert_contains "$(cat "$WORK/leak2.progress")" "secret npm found in" "secret-scan=error"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$R/v2/leak/manifests/2")
[ "$code" = 404 ] || fail "secret-scan=error still pushed the image (HTTP $code)"
pass "secret-scan=error fails the build before the push"

# ---- a secret-looking build arg in the history --------------------------------------------------
cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $B
ARG API_TOKEN
RUN test -n "\$API_TOKEN" && echo done >/done
DOCKERFILE
k build --progress plain --build-arg "API_TOKEN=$token" --output "type=image,name=$R/arg:1,push=true" \
  "$ctx" 2>"$WORK/arg.progress" || fail "the build-arg build failed: $(cat "$WORK/arg.progress")"
assert_contains "$(cat "$WORK/arg.progress")" "build-arg API_TOKEN found in the image config" "build-arg warning"
pass "a secret-looking build arg that reaches the history is reported"

# ---- proper use: no warning ----------------------------------------------------------------------
cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $B
RUN --mount=type=secret,id=npm test -s /run/secrets/npm && echo ok >/ok
DOCKERFILE
k build --progress plain --secret "id=npm,src=$WORK/npmrc" --opt secret-scan=error \
  --output "type=image,name=$R/clean:1,push=true" "$ctx" 2>"$WORK/clean.progress" ||
  fail "a clean build failed the guard: $(cat "$WORK/clean.progress")"
case "$(cat "$WORK/clean.progress")" in *"found in"*) fail "a clean build got a leak warning" ;; esac
pass "a build that only mounts its secret passes secret-scan=error"
