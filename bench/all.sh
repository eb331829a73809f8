#!/usr/bin/env bash
# kiln's benchmark set in one command (issue 8). Builds on a busybox image served by a local
# docker-registry (127.0.0.1) and prints a table: cold build, no-change rebuild, one-file change
# rebuild, 1,000-vertex cached solve, 16 concurrent builds, export throughput, the secret leak
# guard's cost, and kilnd's idle RSS. Needs root, busybox-static and docker-registry.
# Usage: bench/all.sh [BUILD_DIR]      (bench/cache_from.sh covers registry cache import)
set -euo pipefail
build=${1:-build}
GRAPH=$build/bench/graph-llb
[ -x "$GRAPH" ] || { echo "missing $GRAPH: build first" >&2; exit 1; }
name=all
. "$(dirname "$0")/lib.sh"
start_busybox_registry
row() { printf '| %-52s | %14s |\n' "$1" "$2"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f s", b - a }'; }

"$KILND" --root "$work/root" --addr "unix://$work/k.sock" >"$work/kilnd.log" 2>&1 &
kpid=$!
pids+=("$kpid")
for _ in $(seq 100); do grep -q "listening on" "$work/kilnd.log" && break; sleep 0.1; done
sleep 1
idle_rss=$(awk '/VmRSS/ { print $2 }' "/proc/$kpid/status")
k() { "$KILN" --addr "unix://$work/k.sock" "$@"; }

# A 3-stage project: 500 source files, a "compile" stage, a test stage, a small final image.
ctx=$work/app
mkdir -p "$ctx/src"
for i in $(seq 1 500); do seq 1 200 | sed "s/^/file $i line /" >"$ctx/src/f$i.txt"; done
cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $B AS build
COPY src/ /src/
RUN cat /src/*.txt | sort >/app.bin && sleep 1
FROM build AS test
RUN grep -c line /app.bin >/test.out
FROM $B
COPY --from=build /app.bin /usr/local/bin/app.bin
COPY --from=test /test.out /test.out
DOCKERFILE

echo "kiln benchmarks, $(nproc) cores, $(date -u +%Y-%m-%d)"
echo
row "benchmark" "result"
row "----------------------------------------------------" "--------------"
t0=$(now); k build --progress quiet --output "type=local,dest=$work/out" "$ctx"
row "cold build (3 stages, 500 files, RUN sleeps 1 s)" "$(since "$t0")"
t0=$(now); k build --progress quiet --output "type=local,dest=$work/out" "$ctx"
row "no-change rebuild" "$(since "$t0")"
echo "changed" >>"$ctx/src/f250.txt"
t0=$(now); k build --progress quiet --output "type=local,dest=$work/out" "$ctx"
row "one-file change rebuild" "$(since "$t0")"

"$GRAPH" 1000 10 >"$work/graph.pb"
k build --progress quiet <"$work/graph.pb"
t0=$(now); k build --progress quiet <"$work/graph.pb"
row "1,000-vertex graph, fully cached re-solve" "$(since "$t0")"

for i in $(seq 1 16); do
  mkdir -p "$work/c$i"
  printf 'FROM %s\nRUN echo build %s >/id && sleep 1\n' "$B" "$i" >"$work/c$i/Dockerfile"
done
t0=$(now)
bp=()
for i in $(seq 1 16); do
  k build --progress quiet --output "type=local,dest=$work/co$i" "$work/c$i" &
  bp+=($!)
done
for p in "${bp[@]}"; do wait "$p"; done
row "16 concurrent builds (one RUN sleeping 1 s each)" "$(since "$t0")"

# Export throughput: a 200 MB layer written by RUN, exported as an OCI tarball (gzip).
mkdir -p "$work/big"
find /usr/lib /usr/bin -type f -size +10k 2>/dev/null | head -n 5000 | xargs cat 2>/dev/null |
  head -c 200000000 >"$work/big/blob" || true
mb=$(($(stat -c %s "$work/big/blob") / 1000000))
printf 'FROM %s\nCOPY blob /blob\nRUN cp /blob /copy\n' "$B" >"$work/big/Dockerfile"
k build --progress quiet --output "type=local,dest=$work/bigout" "$work/big"
rm -rf "$work/bigout"
t0=$(now)
k build --progress quiet --opt secret-scan=off --output "type=oci,dest=$work/big.tar" "$work/big"
t1=$(now)
row "export of $((2 * mb)) MB of new layers (type=oci, gzip)" \
  "$(awk -v a="$t0" -v b="$t1" -v m="$((2 * mb))" 'BEGIN { printf "%.0f MB/s", m / (b - a) }')"
# The leak guard: a build that mounts a secret has its new layers scanned before the export;
# kilnd logs how long the scan took.
printf 'leak-guard-secret-value' >"$work/secret"
printf 'FROM %s\nCOPY blob /blob\nRUN --mount=type=secret,id=s cp /blob /copy\n' "$B" >"$work/big/Dockerfile"
k build --progress quiet --secret "id=s,src=$work/secret" \
  --output "type=oci,dest=$work/big.tar" "$work/big"
scan_ms=$(grep -o 'secret scan of 1 secret(s): [0-9]* finding(s) in [0-9]* ms' "$work/kilnd.log" |
  tail -n1 | grep -o 'in [0-9]* ms' | grep -o '[0-9]*')
row "secret leak guard: scan of $((2 * mb)) MB of new layers" "${scan_ms:-?} ms"
row "kilnd idle RSS" "$((idle_rss / 1024)) MB"
row "kilnd RSS after the benchmarks" "$(($(awk '/VmRSS/ { print $2 }' "/proc/$kpid/status") / 1024)) MB"
