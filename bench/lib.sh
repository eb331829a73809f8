# Shared setup of the registry benchmarks (bench/all.sh, bench/cache_from.sh). Source it after
# setting `build` (the build directory) and `name` (a word for the temp directory):
#   . "$(dirname "$0")/lib.sh"
# Sets KILND, KILN, MAKE, work (a temp dir removed at exit), pids (stopped at exit), now(),
# and, after start_busybox_registry, R (127.0.0.1:PORT, logging to $work/registry.log) and B
# (busybox on it). Needs root, busybox-static and docker-registry; listens on 127.0.0.1 only.
KILND=$build/daemon/kilnd KILN=$build/client/kiln MAKE=$build/integration/tools/make-busybox-image
for b in "$KILND" "$KILN" "$MAKE"; do [ -x "$b" ] || { echo "missing $b: build first" >&2; exit 1; }; done
command -v docker-registry >/dev/null || { echo "docker-registry is not installed" >&2; exit 1; }
work=$(mktemp -d "/tmp/kiln-bench-$name.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s.%N; }

start_busybox_registry() {
  local port=$((20000 + RANDOM % 20000))
  printf 'version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
    "$work/storage" "$port" >"$work/registry.yml"
  docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  R=127.0.0.1:$port
  B=$R/library/busybox:latest
  "$MAKE" --push "$B" >/dev/null
}
