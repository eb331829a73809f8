#!/usr/bin/env bash
# kiln benchmark (issue 4): per-RUN overhead, a RUN of `true`, with crun and with runc.
# A chain of N `true` steps (each distinct, so none is deduplicated) is built uncached; the
# per-step figure is (chain time - one-step time) / (N - 1), which leaves out the fixed cost
# of the build (session, rootfs sync, export). Prints one figure per line.
# Usage: bench/run_overhead.sh [BUILD_DIR] [N]   (needs root; busybox-static; uses /tmp)
set -euo pipefail
build=${1:-build}
n=${2:-30}
KILND=$build/daemon/kilnd KILN=$build/client/kiln RUN_LLB=$build/llb/run-llb
for b in "$KILND" "$KILN" "$RUN_LLB"; do [ -x "$b" ] || { echo "missing $b: build first" >&2; exit 1; }; done
work=$(mktemp -d /tmp/kiln-bench-run.XXXXXX)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
now() { date +%s.%N; }

rootfs=$work/rootfs
mkdir -p "$rootfs/bin" "$rootfs/etc"
cp /bin/busybox "$rootfs/bin/"
for a in sh true; do ln -s busybox "$rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$rootfs/etc/passwd"
echo 'root:x:0:' >"$rootfs/etc/group"

chain() {  # chain N TAG: a spec of N distinct `true` steps
  local steps=""
  for i in $(seq 1 "$1"); do steps="$steps${steps:+,}{\"args\":[\"/bin/true\",\"$2-$i\"]}"; done
  echo "{\"steps\":[$steps]}"
}

for runtime in crun runc; do
  command -v "$runtime" >/dev/null || { echo "$runtime: not installed"; continue; }
  "$KILND" --root "$work/root-$runtime" --addr "unix://$work/$runtime.sock" \
    --oci-worker-binary "$runtime" >"$work/kilnd-$runtime.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do [ -S "$work/$runtime.sock" ] && break; sleep 0.1; done
  build_secs() {  # build_secs SPEC: seconds for one uncached build
    echo "$1" | "$RUN_LLB" >"$work/def"
    local t0 t1
    t0=$(now)
    "$KILN" --addr "unix://$work/$runtime.sock" build --local rootfs="$rootfs" --progress quiet \
      --no-cache <"$work/def"
    t1=$(now)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }'
  }
  build_secs "$(chain 1 warm)" >/dev/null  # first sync of the rootfs
  one=$(build_secs "$(chain 1 one)")
  many=$(build_secs "$(chain "$n" many)")
  echo "$runtime: 1-step build ${one} s, ${n}-step build ${many} s"
  awk -v a="$one" -v b="$many" -v n="$n" -v r="$runtime" \
    'BEGIN { printf "%s: per-RUN overhead (RUN true): %.1f ms\n", r, (b - a) / (n - 1) * 1000 }'
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
done
