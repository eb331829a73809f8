#!/usr/bin/env bash
# End-to-end builds: hello-llb's definition through `kiln build` against a real kilnd, with a
# real session (FileSync for --local, FileSend for --output), the cache, restarts and prune.
. "$(dirname "$0")/lib.sh"
: "${HELLO_LLB:?HELLO_LLB must name the hello-llb binary}"

root="$WORK/root"
sock="unix://$WORK/k.sock"
ctx="$WORK/ctx"
mkdir -p "$ctx/sub"
echo one >"$ctx/a.txt"
echo two >"$ctx/sub/b.txt"
ln -s a.txt "$ctx/link"

build() {  # build OUTDIR [extra kiln build args...] ; progress goes to $WORK/progress
  local out=$1; shift
  "$HELLO_LLB" | "$KILN" --addr "$sock" build --local context="$ctx" \
    --output type=local,dest="$out" "$@" 2>"$WORK/progress"
}

start_kilnd main --root "$root" --addr "$sock"

build "$WORK/out1" || fail "first build failed: $(cat "$WORK/progress")"
[ "$(cat "$WORK/out1/a.txt")" = one ] || fail "a.txt not copied"
[ "$(cat "$WORK/out1/sub/b.txt")" = two ] || fail "sub/b.txt not copied"
[ "$(readlink "$WORK/out1/link")" = a.txt ] || fail "symlink not kept"
[ "$(cat "$WORK/out1/hello.txt")" = "hello from kiln" ] || fail "hello.txt not written"
[ -d "$WORK/out1/out" ] || fail "/out not created"
grep -q "DONE" "$WORK/progress" || fail "no progress shown"
pass "build copies the context, writes files and exports to a directory"

build "$WORK/out2" || fail "second build failed"
grep -q "copy / /" "$WORK/progress" || fail "progress lacks the copy step"
[ "$(grep -c CACHED "$WORK/progress")" -eq 3 ] || fail "rebuild not fully cached: $(cat "$WORK/progress")"
diff -r "$WORK/out1" "$WORK/out2" || fail "cached rebuild differs"
pass "an unchanged rebuild is fully cached"

echo changed >"$ctx/a.txt"
build "$WORK/out3" || fail "build after a change failed"
[ "$(cat "$WORK/out3/a.txt")" = changed ] || fail "change not picked up"
grep -q "CACHED" "$WORK/progress" && fail "changed context still cached: $(cat "$WORK/progress")"
pass "a changed context file invalidates the copy and what follows"

stop_kilnd "$KILND_PID"
start_kilnd again --root "$root" --addr "$sock"
build "$WORK/out4" || fail "build after restart failed"
[ "$(grep -c CACHED "$WORK/progress")" -eq 3 ] || fail "not cached after restart: $(cat "$WORK/progress")"
pass "results survive a daemon restart"

"$HELLO_LLB" | "$KILN" --addr "$sock" build --local context="$ctx" \
  --output type=tar,dest="$WORK/out.tar" 2>/dev/null || fail "tar build failed"
tar tf "$WORK/out.tar" | grep -x "sub/b.txt" >/dev/null || fail "tarball lacks sub/b.txt: $(tar tf "$WORK/out.tar")"
[ "$(tar xOf "$WORK/out.tar" hello.txt)" = "hello from kiln" ] || fail "tarball content wrong"
pass "tar output"

# Concurrent builds of one new context: all succeed with the same result.
echo concurrent >"$ctx/a.txt"
pids=()
for i in 1 2 3 4 5 6; do
  ( "$HELLO_LLB" | "$KILN" --addr "$sock" build --local context="$ctx" \
      --output type=local,dest="$WORK/par$i" --progress quiet ) &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a concurrent build failed"; done
for i in 2 3 4 5 6; do diff -r "$WORK/par1" "$WORK/par$i" >/dev/null || fail "concurrent results differ"; done
[ "$(cat "$WORK/par1/a.txt")" = concurrent ] || fail "concurrent build used stale content"
pass "six concurrent builds agree"

rc=0
err=$("$HELLO_LLB" | "$KILN" --addr "$sock" build --output type=local,dest="$WORK/x" 2>&1) || rc=$?
[ "$rc" -ne 0 ] || fail "build without --local succeeded"
assert_contains "$err" "--local context=DIR" "missing local"
pass "a missing --local is named"

rc=0
err=$(echo "garbage" | "$KILN" --addr "$sock" build 2>&1) || rc=$?
[ "$rc" -ne 0 ] || fail "garbage definition accepted"
assert_contains "$err" "not a valid LLB definition" "garbage definition"
pass "a malformed definition is rejected"

out=$("$KILN" --addr "$sock" du)
assert_contains "$out" "Total:" "du"
[ "$(echo "$out" | grep -c true)" -ge 3 ] || fail "du lists too few records: $out"
"$KILN" --addr "$sock" prune --all >/dev/null || fail "prune failed"
out=$("$KILN" --addr "$sock" du --filter type==regular)
[ "$(echo "$out" | grep -c true)" -eq 0 ] || fail "records left after prune: $out"
[ -z "$(ls "$root/snapshots")" ] || fail "snapshot dirs left after prune: $(ls "$root/snapshots")"
pass "du reports real records and prune --all removes them and their data"

out=$("$HELLO_LLB" | "$KILN" debug llb)
[ "$(echo "$out" | wc -l)" -eq 4 ] || fail "debug llb should print 4 ops (3 + terminal): $out"
assert_contains "$out" '"identifier":"local://context"' "debug llb"
rc=0
echo x | "$KILN" debug llb >/dev/null 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "debug llb accepted a non-definition"
pass "kiln debug llb prints one JSON op per line and rejects junk"

# Twenty concurrent identical builds of new content: each vertex runs once in all (the daemon
# logs every op it actually runs at debug level).
stop_kilnd "$KILND_PID"
start_kilnd dedupe --root "$root" --addr "$sock" --debug
echo twenty >"$ctx/a.txt"
pids=()
for i in $(seq 20); do
  ( "$HELLO_LLB" | "$KILN" --addr "$sock" build --local context="$ctx" \
      --output type=local,dest="$WORK/dd$i" --progress quiet ) &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "one of 20 concurrent builds failed"; done
[ "$(cat "$WORK/dd20/a.txt")" = twenty ] || fail "concurrent builds used stale content"
for step in "copy / /" "write hello"; do
  n=$(grep -c "run \"$step\"" "$WORK/dedupe.log" || true)
  [ "$n" -eq 1 ] || fail "\"$step\" ran $n times across 20 concurrent builds (want 1)"
done
pass "20 concurrent identical builds run each step once"

# A client killed mid-build (here: during a large context sync): the daemon notices the session
# is gone, fails the build and leaves no mounts or work dirs behind; the next build of the same
# context (same shared key) is correct.
big="$WORK/big"
mkdir -p "$big"
for i in $(seq 80); do truncate -s 10M "$big/f$i"; done
echo marker >"$big/marker"
"$HELLO_LLB" >"$WORK/hello.def"
"$KILN" --addr "$sock" build --local context="$big" --output type=local,dest="$WORK/killed" \
  --progress plain <"$WORK/hello.def" 2>"$WORK/killed.progress" &
victim=$!
PIDS+=("$victim")
for _ in $(seq 200); do grep -q "local://context" "$WORK/killed.progress" 2>/dev/null && break; sleep 0.02; done
grep -q "DONE" "$WORK/killed.progress" && fail "the sync finished before the client was killed"
kill -KILL "$victim"
wait "$victim" 2>/dev/null || true
for _ in $(seq 150); do grep -Eq "build [a-z0-9]+ failed" "$WORK/dedupe.log" && break; sleep 0.1; done
grep -Eq "build [a-z0-9]+ failed" "$WORK/dedupe.log" || fail "daemon did not end the killed client's build"
sleep 0.5
stray=$(grep -F "$root/" /proc/self/mountinfo | awk '{print $5}' | grep -vx "$root/tmp/executor" || true)
[ -z "$stray" ] || fail "mounts left under the state root: $stray"
leftovers=$(ls -A "$root/tmp" | grep -vx executor || true)
[ -z "$leftovers" ] || fail "work dirs left in tmp/: $leftovers"
[ -z "$(ls -A "$root/tmp/executor")" ] || fail "container runs left: $(ls -A "$root/tmp/executor")"
rm -f "$big"/f[2-9]* "$big"/f1?
echo after >"$big/marker"
"$HELLO_LLB" | "$KILN" --addr "$sock" build --local context="$big" \
  --output type=local,dest="$WORK/after-kill" --progress rawjson 2>"$WORK/rawjson" ||
  fail "build after a killed client failed: $(tail -5 "$WORK/rawjson")"
[ "$(cat "$WORK/after-kill/marker")" = after ] || fail "stale content after an aborted sync"
[ "$(ls "$WORK/after-kill" | grep -c '^f')" -eq 1 ] || fail "wrong files after an aborted sync: $(ls "$WORK/after-kill")"
cmp -s "$WORK/after-kill/f1" "$big/f1" || fail "f1 differs after an aborted sync"
pass "a client killed mid-build leaves no mounts or work dirs and corrupts nothing"

head -n1 "$WORK/rawjson" | grep -q '^{"vertexes":\[{' || fail "rawjson progress is not JSON lines: $(head -2 "$WORK/rawjson")"
grep -q '"completed":"' "$WORK/rawjson" || fail "rawjson lacks completion times"
pass "--progress rawjson prints one SolveStatus object per line"
