# Shared helpers for kiln's end-to-end tests. Source it from a test script:
#   . "$(dirname "$0")/lib.sh"
# The environment names the binaries under test: KILND and KILN (set by ctest).
# Every process a test starts is recorded and stopped by PID when the script exits.

set -euo pipefail

: "${KILND:?KILND must name the kilnd binary}"
: "${KILN:?KILN must name the kiln binary}"

TEST_NAME=$(basename "$0" .sh)
WORK=$(mktemp -d "/tmp/kiln-it-${TEST_NAME}.XXXXXX")
PIDS=()

cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
    echo "--- $TEST_NAME failed (rc=$rc); logs:" >&2
    for f in "$WORK"/*.log; do [ -f "$f" ] && { echo "== $f" >&2; tail -n 40 "$f" >&2; }; done
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }
pass() { echo "ok - $*"; }

# start_kilnd NAME [kilnd args...]: starts kilnd with its log in $WORK/NAME.log and waits until
# it listens. Sets KILND_PID and KILND_ADDR (the first address it listens on).
start_kilnd() {
  local name=$1; shift
  local log="$WORK/$name.log"
  "$KILND" "$@" >"$log" 2>&1 &
  KILND_PID=$!
  PIDS+=("$KILND_PID")
  for _ in $(seq 100); do
    if grep -q "listening on" "$log"; then
      KILND_ADDR=$(sed -n 's/.* listening on \([^ ,]*\).*/\1/p' "$log" | head -n1)
      return 0
    fi
    kill -0 "$KILND_PID" 2>/dev/null || fail "kilnd ($name) exited early: $(cat "$log")"
    sleep 0.1
  done
  fail "kilnd ($name) did not start listening within 10s"
}

# stop_kilnd PID: SIGTERM, then wait for a clean exit (status 0).
stop_kilnd() {
  local pid=$1
  kill -TERM "$pid"
  local rc=0
  wait "$pid" || rc=$?
  [ "$rc" -eq 0 ] || fail "kilnd exited with status $rc after SIGTERM"
}

# assert_contains HAYSTACK NEEDLE [what]
assert_contains() {
  case "$1" in
    *"$2"*) ;;
    *) fail "${3:-output} does not contain '$2':"$'\n'"$1" ;;
  esac
}

# make_busybox_rootfs DIR: a minimal root filesystem from Debian's busybox-static (skips the
# test when it is missing): /bin with busybox and its applet links, /etc/passwd and /etc/group
# with root, nobody and a user "kiln" (1000:1000, also in group "extra" 1001).
make_busybox_rootfs() {
  local dir=$1
  [ -x /bin/busybox ] || skip "busybox-static is not installed"
  mkdir -p "$dir/bin" "$dir/etc" "$dir/tmp"
  chmod 1777 "$dir/tmp"
  cp /bin/busybox "$dir/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ -e "$dir/bin/$applet" ] || ln -s busybox "$dir/bin/$applet"
  done
  cat >"$dir/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/sh
kiln:x:1000:1000:kiln:/home/kiln:/bin/sh
PASSWD
  cat >"$dir/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
kiln:x:1000:
extra:x:1001:kiln
GROUP
}

# start_registry NAME [--tls CERT KEY] [--htpasswd FILE]: a real docker-registry
# (distribution v2) on 127.0.0.1 at a free port, storage in $WORK/NAME-storage, log in
# $WORK/NAME.log; over TLS, and with Basic auth from a bcrypt htpasswd FILE, when asked.
# Sets REGISTRY (host:port) and REGISTRY_PID. Skips the test when the package is missing.
start_registry() {
  local name=$1 tls="" auth=""
  shift
  while [ $# -gt 0 ]; do
    case $1 in
      --tls) tls=$'\n'"  tls:"$'\n'"    certificate: $2"$'\n'"    key: $3"; shift 3 ;;
      --htpasswd) auth="auth:"$'\n'"  htpasswd:"$'\n'"    realm: kiln-test"$'\n'"    path: $2"; shift 2 ;;
      *) fail "start_registry: unknown option $1" ;;
    esac
  done
  command -v docker-registry >/dev/null || skip "docker-registry is not installed"
  cat >"$WORK/$name.yml.in" <<YML
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $WORK/$name-storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:@PORT@$tls
$auth
YML
  # The config names the port: write it for each port tried, then become the registry.
  serve_on_free_port "$name" bash -c 'sed "s/@PORT@/$1/" "$2.in" >"$2" && exec docker-registry serve "$2"' \
    _ "{PORT}" "$WORK/$name.yml"
  REGISTRY=$SERVED
  REGISTRY_PID=$SERVED_PID
}

# start_httpd NAME DIR: busybox httpd serving DIR on 127.0.0.1 at a free port, logging each
# request ("url:/path", "response:200") to $WORK/NAME.log. Sets HTTPD (host:port) and
# HTTPD_PID. Skips the test when busybox-static is missing.
start_httpd() {
  [ -x /bin/busybox ] || skip "busybox-static is not installed"
  serve_on_free_port "$1" /bin/busybox httpd -f -vv -p "127.0.0.1:{PORT}" -h "$2"
  HTTPD=$SERVED
  HTTPD_PID=$SERVED_PID
}

# start_git_daemon NAME DIR: `git daemon` serving every repository below DIR read-only over
# git://127.0.0.1 at a free port, logging to $WORK/NAME.log. Sets GITD (host:port) and GITD_PID.
# Skips the test when git is missing.
start_git_daemon() {
  command -v git >/dev/null || skip "git is not installed"
  serve_on_free_port "$1" git daemon --export-all --reuseaddr --informative-errors --verbose \
    --base-path="$2" --listen=127.0.0.1 --port="{PORT}" "$2"
  GITD=$SERVED
  GITD_PID=$SERVED_PID
}

# serve_on_free_port NAME COMMAND...: runs COMMAND in the background, each "{PORT}" in its
# arguments replaced by a random loopback port, with its output in $WORK/NAME.log, until it
# accepts connections on 127.0.0.1:PORT (another port is tried when that one is taken). Sets
# SERVED (host:port) and SERVED_PID; the process is stopped by PID when the test exits.
serve_on_free_port() {
  local name=$1 port log="$WORK/$1.log"
  shift
  for _ in $(seq 20); do
    port=$((20000 + RANDOM % 20000))
    "${@//\{PORT\}/$port}" >"$log" 2>&1 &
    SERVED_PID=$!
    PIDS+=("$SERVED_PID")
    for _ in $(seq 50); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && kill -0 "$SERVED_PID" 2>/dev/null; then
        SERVED="127.0.0.1:$port"
        return 0
      fi
      kill -0 "$SERVED_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill "$SERVED_PID" 2>/dev/null || true
  done
  fail "$name did not start: $(tail -5 "$log")"
}

# ---- builds against a registry seeded with busybox, on daemons that start empty -------------
# (cache tests: a fresh daemon per build shows what a cache import saves)

# start_busybox_registry: start_registry "registry", seeded with busybox built offline by
# $MAKE_BUSYBOX_IMAGE as library/busybox:latest. Skips without root or busybox-static. Sets R
# (the registry, host:port) and B (the busybox image).
start_busybox_registry() {
  : "${MAKE_BUSYBOX_IMAGE:?MAKE_BUSYBOX_IMAGE must name the make-busybox-image binary}"
  [ "$(id -u)" -eq 0 ] || skip "containers need root"
  [ -x /bin/busybox ] || skip "busybox-static is not installed"
  start_registry registry
  "$MAKE_BUSYBOX_IMAGE" --push "$REGISTRY/library/busybox:latest" >/dev/null ||
    fail "could not seed the registry"
  R=$REGISTRY
  B="$R/library/busybox:latest"
}

# fresh NAME: stops the daemon fresh started before (if any) and starts kilnd --debug on an
# empty root ($WORK/root) at unix://$WORK/k.sock, its log in $WORK/NAME.log (KLOG).
KPID=""
fresh() {
  [ -z "$KPID" ] || stop_kilnd "$KPID"
  rm -rf "$WORK/root"
  start_kilnd "$1" --debug --root "$WORK/root" --addr "unix://$WORK/k.sock"
  KPID=$KILND_PID
  KLOG=$WORK/$1.log
}
# k ARGS...: the kiln CLI against that daemon.
k() { "$KILN" --addr "unix://$WORK/k.sock" "$@"; }
# build NAME [kiln build flags...]: builds the context $ctx; progress in $WORK/NAME.progress,
# the exporters' response in $WORK/NAME.json.
build() {
  local name=$1; shift
  k build --progress plain --metadata-file "$WORK/$name.json" "$@" "$ctx" 2>"$WORK/$name.progress" ||
    fail "build $name failed: $(cat "$WORK/$name.progress")"
}
# digest_of NAME: the image digest build NAME pushed.
digest_of() { grep -o '"containerimage.digest": *"sha256:[0-9a-f]*"' "$WORK/$1.json" | grep -o 'sha256:[0-9a-f]*'; }
# runs: the RUN steps the current daemon has executed (one per line, from its --debug log).
runs() { grep -o 'run "[^"]*RUN[^"]*"' "$KLOG" || true; }
# make_stages_context DIR: a Dockerfile context in DIR (also $ctx) building on $B in four
# stages, one RUN each (NRUNS=4): base; deps (COPY deps.txt) and build (COPY src/: main.txt,
# helper.txt), both from base; a final stage copying from deps and build.
make_stages_context() {
  ctx=$1
  mkdir -p "$ctx/src"
  echo "dependency list" >"$ctx/deps.txt"
  echo "main source" >"$ctx/src/main.txt"
  echo "helper source" >"$ctx/src/helper.txt"
  cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $B AS base
RUN echo base >/base.txt
FROM base AS deps
COPY deps.txt /deps.txt
RUN cat /deps.txt >/deps.out
FROM base AS build
COPY src/ /src/
RUN cat /src/main.txt /src/helper.txt >/app.out
FROM $B
COPY --from=deps /deps.out /deps.out
COPY --from=build /app.out /app.out
RUN echo final >/final.txt
DOCKERFILE
  NRUNS=4
}
# assert_rebuilt NAME DIGEST: build NAME (on a fresh daemon, from an imported cache) ran no RUN
# step, showed its steps as cached and pushed the image DIGEST.
assert_rebuilt() {
  [ "$(runs | wc -l)" -eq 0 ] || fail "$1, a rebuild from cache, ran: $(runs)"
  [ "$(digest_of "$1")" = "$2" ] || fail "$1 pushed $(digest_of "$1"), not $2"
  assert_contains "$(cat "$WORK/$1.progress")" "CACHED" "$1"
}
