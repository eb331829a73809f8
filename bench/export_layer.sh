#!/usr/bin/env bash
# Layer export throughput: image::WriteLayerTo (tar + sha256 of the tar + compression + sha256
# of the blob, one pass) against `tar -c | gzip -1` and `tar -c | zstd -3` (no hashing) on the
# same ~1 GB tree of mixed files (binaries, libraries, text, random data, many small files).
# Prints one figure a line. Usage: bench/export_layer.sh [BUILD_DIR]   (uses /tmp)
set -euo pipefail
build=${1:-build}
EXPORT=$build/bench/export-layer
[ -x "$EXPORT" ] || { echo "missing $EXPORT: build first (ninja export-layer)" >&2; exit 1; }
for t in tar gzip zstd; do command -v $t >/dev/null || { echo "missing $t" >&2; exit 1; }; done
work=$(mktemp -d /tmp/kiln-bench-export.XXXXXX)
trap 'rm -rf "$work"' EXIT
tree=$work/tree
mkdir -p "$tree"
# ~700 MB of real files (binaries, headers), 200 MB of random data, 20,000 small text files.
cp -a /usr/bin /usr/include /usr/share/ca-certificates "$tree"/ 2>/dev/null || true
mkdir -p "$tree/random" "$tree/small"
for i in $(seq 0 49); do head -c 4000000 /dev/urandom >"$tree/random/r$i"; done
for d in $(seq 0 99); do
  mkdir -p "$tree/small/d$d"
  for f in $(seq 0 199); do seq $((d * f)) $((d * f + 700)) >"$tree/small/d$d/f$f"; done
done
sync
# MB of the tar stream (rates below are all over these bytes); also warms the page cache.
mb=$(tar -cf - -C "$tree" . | wc -c | awk '{ printf "%.0f", $1 / 1e6 }')
echo "tree: $(du -sm --apparent-size "$tree" | cut -f1) MB of files, $(find "$tree" | wc -l) entries, ${mb} MB as tar"

now() { date +%s.%N; }
rate() { awk -v m="$mb" -v a="$1" -v b="$2" 'BEGIN { printf "%.1f MB/s (%.2f s)", m / (b - a), b - a }'; }

"$EXPORT" "$tree" uncompressed
"$EXPORT" "$tree" gzip 1
"$EXPORT" "$tree" gzip
"$EXPORT" "$tree" zstd 3
t0=$(now); tar -cf - -C "$tree" . | gzip -1 >/dev/null; t1=$(now)
echo "tar -c | gzip -1: $(rate "$t0" "$t1")"
t0=$(now); tar -cf - -C "$tree" . | gzip -6 >/dev/null; t1=$(now)
echo "tar -c | gzip -6: $(rate "$t0" "$t1")"
t0=$(now); tar -cf - -C "$tree" . | zstd -3 -q >/dev/null; t1=$(now)
echo "tar -c | zstd -3: $(rate "$t0" "$t1")"
