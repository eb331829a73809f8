#!/usr/bin/env bash
# kiln benchmarks (issue 3): context sync and cached re-solve. Prints one figure per line.
# Usage: bench/run.sh [BUILD_DIR]   (needs root for overlay mounts; uses /tmp)
set -euo pipefail
build=${1:-build}
KILND=$build/daemon/kilnd KILN=$build/client/kiln HELLO=$build/llb/hello-llb GRAPH=$build/bench/graph-llb
for b in "$KILND" "$KILN" "$HELLO" "$GRAPH"; do [ -x "$b" ] || { echo "missing $b: build first" >&2; exit 1; }; done
work=$(mktemp -d /tmp/kiln-bench.XXXXXX)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# A context of 10,000 files / 200 MB (20 KiB each, 100 directories).
ctx=$work/ctx
for d in $(seq 0 99); do
  mkdir -p "$ctx/d$d"
  for f in $(seq 0 99); do head -c 20480 /dev/urandom >"$ctx/d$d/f$f"; done
done
mb=$(du -sm "$ctx" | cut -f1)

"$KILND" --root "$work/root" --addr "unix://$work/k.sock" --debug >"$work/kilnd.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -S "$work/k.sock" ] && break; sleep 0.1; done
addr="unix://$work/k.sock"
sync_line() { grep "local context:" "$work/kilnd.log" | tail -n1; }

t0=$(now)
"$HELLO" | "$KILN" --addr "$addr" build --local context="$ctx" --progress quiet
t1=$(now)
echo "context: 10000 files, ${mb} MB"
echo "first build (sync, copy into a layer, no export): $(secs "$t0" "$t1") s"
echo "first sync: $(sync_line | sed 's/.*local context: //')"
echo "first build throughput: $(awk -v m="$mb" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", m / (b - a) }') MB/s"

echo changed >"$ctx/d50/f50"
t0=$(now)
"$HELLO" | "$KILN" --addr "$addr" build --local context="$ctx" --progress quiet
t1=$(now)
echo "re-sync after one file changed: $(sync_line | sed 's/.*local context: //'), build $(secs "$t0" "$t1") s"

t0=$(now)
"$HELLO" | "$KILN" --addr "$addr" build --local context="$ctx" --progress quiet
t1=$(now)
echo "unchanged rebuild (all cached): $(secs "$t0" "$t1") s"

"$GRAPH" 1000 10 >"$work/graph.pb"
t0=$(now)
"$KILN" --addr "$addr" build --progress quiet <"$work/graph.pb"
t1=$(now)
echo "1000-vertex FileOp graph, cold: $(secs "$t0" "$t1") s"
t0=$(now)
"$KILN" --addr "$addr" build --progress quiet <"$work/graph.pb"
t1=$(now)
echo "1000-vertex FileOp graph, fully cached re-solve: $(secs "$t0" "$t1") s"
echo "kilnd peak RSS: $(grep VmHWM /proc/$pid/status | awk '{print $2, $3}')"
