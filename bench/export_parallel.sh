#!/usr/bin/env bash
# kiln benchmark (issue 5): new layers are compressed in parallel on export. Through kilnd, a
# type=oci export (gzip) of an image whose new layers are 1, 2 and 4 RUN steps each writing the
# same amount of data (SIZE MB of /usr files, re-read per step). With one thread per core, the
# export of 2 layers on a 2-core machine should take about as long as that of 1.
# Prints one figure a line. Usage: bench/export_parallel.sh [BUILD_DIR] [SIZE_MB]
# (needs root; busybox-static; uses /tmp)
set -euo pipefail
build=${1:-build}
size=${2:-200}
KILND=$build/daemon/kilnd KILN=$build/client/kiln RUN_LLB=$build/llb/run-llb
for b in "$KILND" "$KILN" "$RUN_LLB"; do [ -x "$b" ] || { echo "missing $b: build first" >&2; exit 1; }; done
work=$(mktemp -d /tmp/kiln-bench-export-par.XXXXXX)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
now() { date +%s.%N; }

rootfs=$work/rootfs
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/data"
cp /bin/busybox "$rootfs/bin/"
for a in sh cat head; do ln -s busybox "$rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$rootfs/etc/passwd"
echo 'root:x:0:' >"$rootfs/etc/group"
# Compressible input: real binaries and text, cut to SIZE MB.
find /usr/lib /usr/bin /usr/share -type f -size +10k 2>/dev/null | head -n 20000 | xargs cat 2>/dev/null |
  head -c $((size * 1000000)) >"$rootfs/data/blob" || true

"$KILND" --root "$work/root" --addr "unix://$work/k.sock" >"$work/kilnd.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -S "$work/k.sock" ] && break; sleep 0.1; done

echo "cores: $(nproc); each layer: $size MB; gzip (level 6, like BuildKit's default)"
# The base layer (the rootfs copy) is exported once up front, so its blob is reused below.
echo '{"steps":[]}' | "$RUN_LLB" >"$work/def"
"$KILN" --addr "unix://$work/k.sock" build --local rootfs="$rootfs" \
  --output "type=oci,dest=$work/image.tar,compression=gzip" --progress quiet <"$work/def" >/dev/null
for layers in 1 2 4; do
  steps=""
  for i in $(seq 1 "$layers"); do
    steps="$steps${steps:+,}{\"run\":\"cat /data/blob > /layer$i-$layers\"}"
  done
  echo "{\"steps\":[$steps]}" | "$RUN_LLB" >"$work/def"
  # Build (and cache) first, so the timed run is the export alone.
  "$KILN" --addr "unix://$work/k.sock" build --local rootfs="$rootfs" --output type=local,dest="$work/out" \
    --progress quiet <"$work/def" >/dev/null
  rm -rf "$work/out"
  t0=$(now)
  "$KILN" --addr "unix://$work/k.sock" build --local rootfs="$rootfs" \
    --output "type=oci,dest=$work/image.tar,compression=gzip" --progress quiet <"$work/def" >/dev/null
  t1=$(now)
  awk -v n="$layers" -v s="$size" -v a="$t0" -v b="$t1" \
    'BEGIN { printf "%d new layer(s), %d MB: %.2f s (%.0f MB/s)\n", n, n * s, b - a, n * s / (b - a) }'
  rm -f "$work/image.tar"
done
