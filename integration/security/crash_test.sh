#!/usr/bin/env bash
# kilnd killed with SIGKILL while 8 builds run at once: it restarts on the same root with an
# intact store (du lists the records, no error in its log), the steps that had finished before
# the kill are cache hits, and the 8 builds then succeed.
. "$(dirname "$0")/../lib.sh"
start_busybox_registry
sock="unix://$WORK/k.sock"

# Eight projects sharing a first step; each then writes data and sleeps.
for i in 1 2 3 4 5 6 7 8; do
  mkdir -p "$WORK/p$i"
  head -c 200000 /dev/urandom >"$WORK/p$i/data"
  cat >"$WORK/p$i/Dockerfile" <<DOCKERFILE
FROM $B
RUN echo common >/common
COPY data /data
RUN cp /data /copy && sleep \${PAUSE:-0} && echo $i >/done
DOCKERFILE
done
sed_pause() { for i in 1 2 3 4 5 6 7 8; do sed -i "s/sleep [0-9\${}A-Z:-]*/sleep $1/" "$WORK/p$i/Dockerfile"; done; }

start_kilnd first --root "$WORK/root" --addr "$sock" --debug
# Warm the shared step.
k build --progress plain --output "type=local,dest=$WORK/warm" "$WORK/p1" 2>"$WORK/warm.progress" ||
  fail "the warm-up build failed: $(cat "$WORK/warm.progress")"

sed_pause 5
pids=()
for i in 1 2 3 4 5 6 7 8; do
  k build --progress plain --output "type=local,dest=$WORK/out$i" "$WORK/p$i" >/dev/null 2>"$WORK/b$i.progress" &
  pids+=($!)
done
# Kill once every build has started its slow step.
for _ in $(seq 100); do
  [ "$(grep -c 'crun args=\[/bin/sh -c cp /data' "$WORK/first.log" || true)" -ge 4 ] && break
  sleep 0.1
done
kill -KILL "$KILND_PID"
for p in "${pids[@]}"; do wait "$p" || true; done

start_kilnd second --root "$WORK/root" --addr "$sock" --debug
k du >"$WORK/du.txt" || fail "du failed after the crash: $(cat "$WORK/du.txt")"
[ "$(wc -l <"$WORK/du.txt")" -gt 1 ] || fail "du lists no records after the crash"
sed_pause 0
for i in 1 2 3 4 5 6 7 8; do
  k build --progress plain --output "type=local,dest=$WORK/after$i" "$WORK/p$i" 2>"$WORK/a$i.progress" &
  pids[$((i - 1))]=$!
done
for i in 1 2 3 4 5 6 7 8; do
  wait "${pids[$((i - 1))]}" || fail "build $i failed after the restart: $(cat "$WORK/a$i.progress")"
  [ "$(cat "$WORK/after$i/done")" = "$i" ] || fail "build $i's output is wrong"
  cmp -s "$WORK/after$i/copy" "$WORK/p$i/data" || fail "build $i copied the wrong data"
done
grep -q 'run "\[stage-0 2/4\] RUN echo common' "$WORK/second.log" &&
  fail "the step finished before the crash was not a cache hit"
! grep -qi "corrupt\|database disk image is malformed" "$WORK/second.log" ||
  fail "the restarted daemon reports corruption: $(grep -i corrupt "$WORK/second.log")"
pass "after SIGKILL during 8 builds kilnd restarts on its root, earlier steps are cache hits, and all 8 builds succeed"
