#!/usr/bin/env bash
# kiln benchmark (issue 7): a cold build of a 5-stage Dockerfile that exports a mode=max
# registry cache, against a rebuild on a fresh daemon (empty state root) that imports it, and a
# rebuild after one source file of the last stage changed. Prints seconds, RUN steps executed
# and bytes pulled from the registry (blob downloads) for each. Needs root, busybox-static and
# docker-registry; listens on 127.0.0.1 only.
# Usage: bench/cache_from.sh [BUILD_DIR] [WORK_SECONDS_PER_STAGE]
set -euo pipefail
build=${1:-build}
work_s=${2:-1}
name=cache
. "$(dirname "$0")/lib.sh"
start_busybox_registry

ctx=$work/ctx
mkdir -p "$ctx"
for s in 1 2 3 4 5; do seq 1 200000 | sed "s/^/stage $s line /" >"$ctx/input$s.txt"; done
{
  echo "FROM $R/library/busybox:latest AS s1"
  echo "COPY input1.txt /in"
  echo "RUN sleep $work_s && sort -r /in >/out1"
  for s in 2 3 4; do
    echo "FROM $R/library/busybox:latest AS s$s"
    echo "COPY --from=s$((s - 1)) /out$((s - 1)) /prev"
    echo "COPY input$s.txt /in"
    echo "RUN sleep $work_s && cat /prev /in | sort >/out$s"
  done
  echo "FROM $R/library/busybox:latest"
  echo "COPY --from=s4 /out4 /app/data"
  echo "COPY input5.txt /app/input"
  echo "RUN sleep $work_s && wc -l /app/data /app/input >/app/summary"
} >"$ctx/Dockerfile"

kpid=""
fresh() {
  [ -n "$kpid" ] && { kill "$kpid"; wait "$kpid" 2>/dev/null || true; }
  rm -rf "$work/root"
  "$KILND" --debug --root "$work/root" --addr "unix://$work/k.sock" >"$work/$1.log" 2>&1 &
  kpid=$!
  pids+=("$kpid")
  for _ in $(seq 100); do grep -q "listening on" "$work/$1.log" && break; sleep 0.1; done
}
# run LOG LABEL ARGS...: one timed build on the daemon logging to LOG; prints seconds, RUN
# steps executed and bytes pulled.
run() {
  local log=$1 name=$2
  shift 2
  local mark t0 t1 runs pulled
  mark=$(wc -l <"$work/registry.log")
  t0=$(now)
  "$KILN" --addr "unix://$work/k.sock" build --progress quiet "$@" "$ctx" >/dev/null
  t1=$(now)
  runs=$(grep -c 'run "[^"]*RUN' "$work/$log.log" || true)
  pulled=$(tail -n +"$((mark + 1))" "$work/registry.log" |
    grep 'http.request.method=GET' | grep '/blobs/' | grep -o 'http.response.written=[0-9]*' |
    awk -F= '{ s += $2 } END { print s + 0 }')
  awk -v n="$name" -v a="$t0" -v b="$t1" -v r="$runs" -v p="$pulled" \
    'BEGIN { printf "%-40s %6.2f s  %d RUN steps  %8.1f kB pulled\n", n, b - a, r, p / 1000 }'
}

echo "5 stages, each RUN sleeping $work_s s; mode=max registry cache on 127.0.0.1"
fresh cold
run cold "cold build (exports the cache)" --output "type=image,name=$R/app:bench,push=true" \
  --export-cache "type=registry,ref=$R/cache:bench,mode=max"
fresh warm
run warm "fresh daemon, --import-cache" --output "type=image,name=$R/app:bench,push=true" \
  --import-cache "type=registry,ref=$R/cache:bench"
echo "one more line" >>"$ctx/input5.txt"
fresh changed
run changed "fresh daemon, last stage's input changed" --output "type=image,name=$R/app:bench2,push=true" \
  --import-cache "type=registry,ref=$R/cache:bench"
