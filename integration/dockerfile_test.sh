#!/usr/bin/env bash
# Dockerfile builds through kilnd's built-in dockerfile.v0 frontend, on a busybox image from a
# real docker-registry: multi-stage Go-style and Python-style builds with `kiln build -f`, the
# buildctl-style `--frontend dockerfile.v0 --local ...`, .dockerignore, `# syntax=` offline, and
# the four ways of handling a secret, each image scanned (every layer, the config, the history)
# for the secret's bytes, and ADD from http:// URLs served by busybox httpd.
. "$(dirname "$0")/lib.sh"
start_busybox_registry
sock="unix://$WORK/k.sock"
start_kilnd main --root "$WORK/root" --addr "$sock"

# image_blobs TAR DIR: unpacks an OCI archive and prints every blob's content, decompressed.
image_blobs() {
  mkdir -p "$2" && tar xf "$1" -C "$2"
  for b in "$2"/blobs/sha256/*; do
    if gzip -t "$b" 2>/dev/null; then zcat "$b"; else cat "$b"; fi
  done
}
# config_of TAR: the image config JSON of a single-manifest OCI archive.
config_of() {
  local dir=$WORK/cfg.$RANDOM
  mkdir -p "$dir" && tar xf "$1" -C "$dir"
  local manifest config
  manifest=$(grep -o 'sha256:[0-9a-f]\{64\}' "$dir/index.json" | head -n1)
  config=$(grep -o '"config":{[^}]*' "$dir/blobs/sha256/${manifest#sha256:}" | grep -o 'sha256:[0-9a-f]\{64\}')
  cat "$dir/blobs/sha256/${config#sha256:}"
}

# ---- Go-style multi-stage build --------------------------------------------------------------
go=$WORK/go
mkdir -p "$go/cmd"
cat >"$go/Dockerfile" <<EOF
# syntax=docker/dockerfile:1
ARG BASE=$B
FROM \$BASE AS builder
WORKDIR /src
COPY go.mod ./
RUN --mount=type=cache,target=/root/.cache/go-build echo "deps downloaded" > /src/deps.txt
COPY cmd/ ./cmd/
ARG VERSION=dev
RUN --mount=type=cache,target=/root/.cache/go-build \\
    mkdir -p /out && { echo '#!/bin/sh'; echo "echo app \$VERSION"; } > /out/app && chmod 755 /out/app && \\
    date > /root/.cache/go-build/stamp

FROM \$BASE AS unused
RUN exit 1

FROM \$BASE
COPY --from=builder /out/app /usr/local/bin/app
USER nobody
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/app"]
EOF
echo "module example.com/app" >"$go/go.mod"
echo "package main" >"$go/cmd/main.go"
k build -f "$go/Dockerfile" --build-arg VERSION=1.2.3 --progress plain \
  --output "type=oci,dest=$WORK/go.tar" --metadata-file "$WORK/go.json" "$go" 2>"$WORK/progress" ||
  fail "Go-style build failed: $(cat "$WORK/progress")"
assert_contains "$(cat "$WORK/progress")" "using the built-in Dockerfile frontend for docker/dockerfile:1" "progress"
assert_contains "$(cat "$WORK/progress")" "[builder 7/7] RUN --mount=type=cache" "progress"
case "$(cat "$WORK/progress")" in *"exit 1"*) fail "the unused stage was built" ;; esac
cfg=$(config_of "$WORK/go.tar")
assert_contains "$cfg" '"Entrypoint":["/usr/local/bin/app"]' "image config"
assert_contains "$cfg" '"User":"nobody"' "image config"
assert_contains "$cfg" '"8080/tcp":{}' "image config"
assert_contains "$cfg" '"created_by":"COPY /out/app /usr/local/bin/app # buildkit"' "history"
case "$cfg" in *VERSION=1.2.3*) fail "a build arg of another stage is in the final image: $cfg" ;; esac
pass "a Go-style multi-stage build with a cache mount and an unused stage"

# A rebuild is cached, and the app runs from the exported root filesystem.
k build -f "$go/Dockerfile" --build-arg VERSION=1.2.3 --progress plain \
  --output "type=local,dest=$WORK/go-root" "$go" 2>"$WORK/progress" || fail "rebuild failed: $(cat "$WORK/progress")"
[ "$(grep -c CACHED "$WORK/progress")" -ge 4 ] || fail "the rebuild was not cached: $(cat "$WORK/progress")"
[ "$(chroot "$WORK/go-root" /usr/local/bin/app)" = "app 1.2.3" ] || fail "the built app does not run"
pass "an unchanged rebuild is cached and the app runs"

# ---- Python-style build, .dockerignore, buildctl-style flags --------------------------------
py=$WORK/py
mkdir -p "$py/app" "$py/.venv" "$py/df"
cat >"$py/df/app.Dockerfile" <<EOF
FROM $B
ENV PYTHONUNBUFFERED=1 APP_HOME=/app
WORKDIR \$APP_HOME
COPY requirements.txt .
RUN --mount=type=cache,target=/root/.cache/pip sed 's/^/installed /' requirements.txt > installed.txt
COPY . .
COPY --parents app/__main__.py /parents/
LABEL org.opencontainers.image.title="py app"
CMD ["python", "-m", "app"]
EOF
echo "flask==3.0" >"$py/requirements.txt"
echo "print('hi')" >"$py/app/__main__.py"
echo "secret venv" >"$py/.venv/junk"
echo "log" >"$py/debug.log"
printf '.venv\n*.log\ndf\n' >"$py/.dockerignore"
k build --frontend dockerfile.v0 --local context="$py" --local dockerfile="$py/df" \
  --opt filename=app.Dockerfile --progress plain --output "type=oci,dest=$WORK/py.tar" \
  2>"$WORK/progress" || fail "Python-style build failed: $(cat "$WORK/progress")"
list=$(image_blobs "$WORK/py.tar" "$WORK/py-blobs" | tr -d '\0' | strings)
assert_contains "$list" "installed flask==3.0" "layers"
assert_contains "$list" "parents/app/__main__.py" "layers (COPY --parents)"
case "$list" in *"secret venv"*|*debug.log*) fail ".dockerignore'd files reached the image" ;; esac
cfg=$(config_of "$WORK/py.tar")
assert_contains "$cfg" '"WorkingDir":"/app"' "image config"
assert_contains "$cfg" '"org.opencontainers.image.title":"py app"' "image config"
assert_contains "$cfg" '"Cmd":["python","-m","app"]' "image config"
assert_contains "$cfg" '"PYTHONUNBUFFERED=1"' "image config"
pass "a Python-style build with --frontend/--local/--opt, honouring .dockerignore"

# ---- Named contexts: an image and a local directory stand in for names -----------------------
nc=$WORK/nc
mkdir -p "$nc/ctx" "$nc/extra"
echo "from the extra context" >"$nc/extra/note.txt"
printf 'FROM alpine:3.99\nCOPY --from=extra note.txt /note.txt\nRUN cat /note.txt > /seen\n' >"$nc/ctx/Dockerfile"
k build --opt "context:alpine:3.99=docker-image://$B" --opt context:extra=local:extra \
  --local extra="$nc/extra" --progress plain --output "type=local,dest=$WORK/nc-out" "$nc/ctx" \
  2>"$WORK/progress" || fail "build with named contexts failed: $(cat "$WORK/progress")"
[ "$(cat "$WORK/nc-out/seen")" = "from the extra context" ] || fail "the local named context was not used"
[ -x "$WORK/nc-out/bin/busybox" ] || fail "the image named context was not used as the base"
pass "context:NAME=docker-image://... and context:NAME=local:... replace images and stages"

# ---- Syntax directives and errors ------------------------------------------------------------
bad=$WORK/bad
mkdir -p "$bad"
printf '# syntax=example.com/some/frontend:1\nFROM %s\n' "$B" >"$bad/Dockerfile"
rc=0; k build --progress plain "$bad" 2>"$WORK/progress" || rc=$?
[ "$rc" -ne 0 ] || fail "an external syntax image was accepted"
assert_contains "$(cat "$WORK/progress")" "example.com/some/frontend:1" "syntax error"
printf 'FROM %s\nRUN --mount=type=bogus,target=/x true\n' "$B" >"$bad/Dockerfile"
rc=0; k build --progress plain "$bad" 2>"$WORK/progress" || rc=$?
[ "$rc" -ne 0 ] || fail "a bad mount type was accepted"
assert_contains "$(cat "$WORK/progress")" "bogus" "mount error"
pass "an external # syntax= image and a bad --mount fail clearly"

# ---- Four ways to handle a secret, each image scanned ----------------------------------------
S=kiln-s3cr3t-$RANDOM$RANDOM
sec=$WORK/sec
mkdir -p "$sec"
echo "$S" >"$sec/secret.conf"
scan() {  # scan NAME: prints where the secret is found in image NAME's blobs and config
  image_blobs "$WORK/$1.tar" "$WORK/$1-blobs" | tr -d '\0' | grep -c -a "$S" || true
}
build_secret() {  # build_secret NAME DOCKERFILE [kiln args]
  local name=$1 df=$2; shift 2
  printf '%s\n' "$df" >"$sec/Dockerfile"
  k build --progress plain --output "type=oci,dest=$WORK/$name.tar" "$@" "$sec" 2>"$WORK/$name.progress" ||
    fail "$name build failed: $(cat "$WORK/$name.progress")"
}

build_secret copyrm "FROM $B
COPY secret.conf /tmp/secret.conf
RUN cat /tmp/secret.conf >/dev/null && rm /tmp/secret.conf"
[ "$(scan copyrm)" -ge 1 ] || fail "COPY then RUN rm: the secret should still be in the COPY layer"
pass "COPY secret + RUN rm: the secret stays in a layer (documented leak, as with any builder)"

build_secret arg "FROM $B
ARG SECRET
RUN test -n \"\$SECRET\"" --build-arg "SECRET=$S"
[ "$(scan arg)" -ge 1 ] || fail "ARG + --build-arg: the secret should be in the history"
assert_contains "$(config_of "$WORK/arg.tar")" "SECRET=$S" "history (ARG value in RUN's created_by)"
assert_contains "$(cat "$WORK/arg.progress")" "SecretsUsedInArgOrEnv" "warning"
assert_contains "$(cat "$WORK/arg.progress")" "--mount=type=secret" "warning"
pass "ARG SECRET + --build-arg: leaks into history, and kiln warns"

build_secret env "FROM $B
ENV API_TOKEN=$S"
assert_contains "$(config_of "$WORK/env.tar")" "API_TOKEN=$S" "image config"
assert_contains "$(cat "$WORK/env.progress")" "SecretsUsedInArgOrEnv" "warning"
pass "ENV API_TOKEN=...: in the image config, and kiln warns"

# A secret value of its own, so that the earlier (leaky) builds cannot be what a scan finds.
S=kiln-mounted-$RANDOM$RANDOM
echo "$S" >"$WORK/secret.txt"
build_secret mount "FROM $B
RUN --mount=type=secret,id=conf grep -q . /run/secrets/conf && wc -c /run/secrets/conf > /secret-size
RUN --mount=type=secret,id=conf,env=CONF test -n \"\$CONF\"" --secret "id=conf,src=$WORK/secret.txt"
[ "$(scan mount)" -eq 0 ] || fail "RUN --mount=type=secret leaked the secret into the image"
! grep -q -a "$S" "$WORK/mount.progress" "$WORK/main.log" || fail "the secret reached the progress or the daemon log"
! grep -r -q -a "$S" "$WORK/root" 2>/dev/null || fail "the secret is on disk in kilnd's root"
pass "RUN --mount=type=secret: the secret is in no layer, config, history, log or kilnd's disk"

# ---- ADD from http:// URLs, served by busybox httpd ------------------------------------------
web=$WORK/web
mkdir -p "$web/srv" "$web/ctx" "$web/arc/top"
echo "downloaded over http" >"$web/srv/file.txt"
touch -d "2020-02-02 02:02:02 UTC" "$web/srv/file.txt"
echo "inside the archive" >"$web/arc/top/inner.txt"
tar czf "$web/srv/archive.tar.gz" -C "$web/arc" top
start_httpd web "$web/srv"
sum=sha256:$(sha256sum "$web/srv/archive.tar.gz" | cut -d' ' -f1)
cat >"$web/ctx/Dockerfile" <<EOF
FROM $B
ADD http://$HTTPD/file.txt /x/
ADD --checksum=$sum http://$HTTPD/archive.tar.gz /y/
RUN cat /x/file.txt > /seen && stat -c '%a %Y' /x/file.txt > /x-stat
EOF
web_build() {  # web_build NAME: builds $web/ctx into $WORK/NAME (type=local)
  k build --progress plain --output "type=local,dest=$WORK/$1" "$web/ctx" 2>"$WORK/$1.progress"
}
web_build web-out || fail "ADD from http:// failed: $(cat "$WORK/web-out.progress")"
[ "$(cat "$WORK/web-out/seen")" = "downloaded over http" ] || fail "ADD http://.../file.txt /x/ did not land in /x/"
[ "$(cat "$WORK/web-out/x-stat")" = "600 $(date -d '2020-02-02 02:02:02 UTC' +%s)" ] ||
  fail "a downloaded file should be 0600 with the server's Last-Modified time: $(cat "$WORK/web-out/x-stat")"
cmp -s "$WORK/web-out/y/archive.tar.gz" "$web/srv/archive.tar.gz" ||
  fail "ADD --checksum of a remote archive should copy it as is: $(ls -lR "$WORK/web-out/y")"
[ ! -e "$WORK/web-out/y/top" ] || fail "a remote archive was extracted"
pass "ADD http://... and ADD --checksum=... http://...tar.gz (kept as a file, not extracted)"

# Unchanged: a rebuild revalidates file.txt with its ETag (304) and does not ask for the pinned
# archive at all.
fetches=$(grep -c "url:/archive.tar.gz" "$WORK/web.log")
web_build web-again || fail "the ADD rebuild failed: $(cat "$WORK/web-again.progress")"
[ "$(grep -c "url:/archive.tar.gz" "$WORK/web.log")" -eq "$fetches" ] ||
  fail "a cached ADD --checksum still downloaded the archive: $(cat "$WORK/web.log")"
grep -q "response:304" "$WORK/web.log" || fail "the rebuild did not revalidate file.txt: $(cat "$WORK/web.log")"
[ "$(grep -c CACHED "$WORK/web-again.progress")" -ge 3 ] ||
  fail "the ADD rebuild was not cached: $(cat "$WORK/web-again.progress")"
pass "an unchanged ADD from http:// is revalidated by ETag, a pinned one needs no request"

# A wrong --checksum fails, naming the digests; a missing file fails, naming the status.
wrong=sha256:$(printf '%064d' 0)
printf 'FROM %s\nADD --checksum=%s http://%s/file.txt /x/\n' "$B" "$wrong" "$HTTPD" >"$web/ctx/Dockerfile"
rc=0; web_build web-bad || rc=$?
[ "$rc" -ne 0 ] || fail "ADD with a wrong --checksum succeeded"
assert_contains "$(cat "$WORK/web-bad.progress")" "digest mismatch" "checksum error"
assert_contains "$(cat "$WORK/web-bad.progress")" "$wrong" "checksum error"
printf 'FROM %s\nADD http://%s/missing.txt /x/\n' "$B" "$HTTPD" >"$web/ctx/Dockerfile"
rc=0; web_build web-404 || rc=$?
[ "$rc" -ne 0 ] || fail "ADD of a missing URL succeeded"
assert_contains "$(cat "$WORK/web-404.progress")" "404" "status error"
pass "ADD with a wrong --checksum or a missing URL fails clearly"

# ---- buildx shorthands: -t, --push, --load-to --------------------------------------------------
k build --progress quiet -t "$REGISTRY/tagged/app:1" -t "$REGISTRY/tagged/app:latest" --push \
  --load-to "$WORK/load.tar" "$go" || fail "kiln build -t --push --load-to failed"
for tag in 1 latest; do
  code=$(curl -s -o /dev/null -w '%{http_code}' \
    -H "Accept: application/vnd.docker.distribution.manifest.v2+json" "http://$REGISTRY/v2/tagged/app/manifests/$tag")
  [ "$code" = 200 ] || fail "-t ...:$tag --push did not push (HTTP $code)"
done
assert_contains "$(tar xOf "$WORK/load.tar" manifest.json)" "tagged/app:1" "--load-to tarball"
pass "kiln build -t NAME --push pushes every tag; --load-to writes a docker-load tarball"

# ---- buildctl, when one is available ----------------------------------------------------------
BUILDCTL=${BUILDCTL:-$(command -v buildctl || true)}
if [ -n "$BUILDCTL" ] && [ -x "$BUILDCTL" ]; then
  "$BUILDCTL" --addr "$sock" build --frontend dockerfile.v0 --local context="$go" \
    --local dockerfile="$go" --opt build-arg:VERSION=9.9 --output "type=oci,dest=$WORK/bc.tar" \
    --progress plain 2>"$WORK/bc.progress" || fail "buildctl build failed: $(cat "$WORK/bc.progress")"
  assert_contains "$(config_of "$WORK/bc.tar")" '"Entrypoint":["/usr/local/bin/app"]' "buildctl image"
  pass "buildctl --frontend dockerfile.v0 builds the Go-style Dockerfile"
fi
