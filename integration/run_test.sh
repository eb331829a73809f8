#!/usr/bin/env bash
# RUN steps (ExecOp) in real containers: crun by default and runc, every mount type, secrets
# that never leak, SSH agent forwarding, entitlements, concurrency and cleanup. Definitions come
# from run-llb (llb/examples/run_llb.cc) over a busybox root filesystem.
. "$(dirname "$0")/lib.sh"
: "${RUN_LLB:?RUN_LLB must name the run-llb binary}"
[ "$(id -u)" -eq 0 ] || skip "containers need root"
command -v crun >/dev/null || skip "crun is not installed"

root="$WORK/root"
sock="unix://$WORK/k.sock"
rootfs="$WORK/rootfs"
make_busybox_rootfs "$rootfs"

# run SPEC_JSON OUTDIR [kiln build args...]: builds; progress in $WORK/progress.
run() {
  local spec=$1 out=$2; shift 2
  echo "$spec" | "$RUN_LLB" >"$WORK/def" || fail "run-llb rejected: $spec"
  "$KILN" --addr "$sock" build --local rootfs="$rootfs" --output type=local,dest="$out" \
    --progress plain "$@" <"$WORK/def" 2>"$WORK/progress"
}
# run_fails SPEC_JSON [kiln build args...]: the build must fail; its output in $WORK/progress.
run_fails() {
  local spec=$1; shift
  if run "$spec" "$WORK/failed" "$@"; then fail "build succeeded but should fail: $spec"; fi
}
# no_stray_state: nothing of finished builds is left: no mounts under the state root except
# the executor's own state dir, no containers or runtime processes, no work dirs.
no_stray_state() {
  local mounts
  mounts=$(grep -F "$root/" /proc/self/mountinfo | awk '{print $5}' | grep -v "^$root/tmp/executor$" || true)
  [ -z "$mounts" ] || fail "mounts left behind: $mounts"
  local leftovers
  leftovers=$(ls -A "$root/tmp" | grep -v '^executor$' || true)
  [ -z "$leftovers" ] || fail "work dirs left in tmp/: $leftovers"
  [ -z "$(ls -A "$root/tmp/executor" 2>/dev/null)" ] || fail "bundles left: $(ls -A "$root/tmp/executor")"
  if pgrep -f "$root/tmp/executor" >/dev/null; then fail "runtime processes left: $(pgrep -af "$root/tmp/executor")"; fi
}

start_kilnd main --root "$root" --addr "$sock" --debug

# --- exit codes, env, cwd, user
run '{"steps":[{"run":"echo hello; echo oops >&2; exit 3"}]}' "$WORK/x" && fail "exit 3 succeeded"
assert_contains "$(cat "$WORK/progress")" 'process "/bin/sh -c echo hello; echo oops >&2; exit 3" did not complete successfully: exit code: 3' "exit error"
assert_contains "$(cat "$WORK/progress")" "hello" "stdout log"
assert_contains "$(cat "$WORK/progress")" "oops" "stderr log"
pass "a nonzero exit fails the step with the command and exit code; output is streamed"

run '{"steps":[{"run":"echo \"$GREETING $PATH\" > /env.txt; pwd > /cwd.txt; id > /id.txt","env":{"GREETING":"hi"},"cwd":"/work/dir"}]}' "$WORK/o1" ||
  fail "env/cwd build failed: $(cat "$WORK/progress")"
[ "$(cat "$WORK/o1/env.txt")" = "hi /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" ] || fail "env: $(cat "$WORK/o1/env.txt")"
[ "$(cat "$WORK/o1/cwd.txt")" = /work/dir ] || fail "cwd: $(cat "$WORK/o1/cwd.txt")"
[ -d "$WORK/o1/work/dir" ] || fail "cwd not created in the result"
assert_contains "$(cat "$WORK/o1/id.txt")" "uid=0(root) gid=0(root)" "root user"
pass "env (with the default PATH), cwd (created) and root user"

run '{"steps":[{"run":"id > /tmp/a","user":"kiln"},{"run":"id > /tmp/b","user":"nobody"},{"run":"id > /tmp/c","user":"1234:5678"},{"run":"id > /tmp/d","user":"kiln:root"}]}' "$WORK/o2" ||
  fail "user build failed: $(cat "$WORK/progress")"
assert_contains "$(cat "$WORK/o2/tmp/a")" "uid=1000(kiln) gid=1000(kiln) groups=1001(extra)" "user by name"
assert_contains "$(cat "$WORK/o2/tmp/b")" "uid=65534(nobody) gid=65534(nogroup)" "nobody"
assert_contains "$(cat "$WORK/o2/tmp/c")" "uid=1234 gid=5678" "numeric user"
assert_contains "$(cat "$WORK/o2/tmp/d")" "uid=1000(kiln) gid=0(root)" "name:group"
run_fails '{"steps":[{"run":"true","user":"ghost"}]}'
assert_contains "$(cat "$WORK/progress")" "unable to find user ghost" "unknown user"
pass "users resolve from the rootfs's passwd and group files"

# --- mounts
run '{"steps":[{"run":"mkdir -p /data && echo base > /data/f"},
               {"run":"cat /in/f > /copied; echo x > /in/f 2>/dev/null && echo writable > /ro-result || echo readonly > /ro-result; echo made > /out/made; mount | grep \" /t \" > /tmpfs.txt; echo t > /t/x",
                "mounts":[{"target":"/in","from":"step:0","selector":"/data","readonly":true},
                          {"target":"/out","from":"scratch"},
                          {"type":"tmpfs","target":"/t","size":1048576}]}],
     "output":"root"}' "$WORK/o3" || fail "mount build failed: $(cat "$WORK/progress")"
[ "$(cat "$WORK/o3/copied")" = base ] || fail "read-only bind did not show the selected dir"
[ "$(cat "$WORK/o3/ro-result")" = readonly ] || fail "read-only bind was writable"
assert_contains "$(cat "$WORK/o3/tmpfs.txt")" "tmpfs" "tmpfs mount"
assert_contains "$(cat "$WORK/o3/tmpfs.txt")" "size=1024k" "tmpfs size"
[ ! -e "$WORK/o3/t/x" ] || fail "tmpfs content leaked into the result"
[ ! -e "$WORK/o3/out/made" ] || fail "a writable bind's content landed in the root"
run '{"steps":[{"run":"echo made > /out/made","mounts":[{"target":"/out","from":"scratch"}]}],"output":{"step":0,"mount":"/out"}}' "$WORK/o4" ||
  fail "mount output build failed: $(cat "$WORK/progress")"
[ "$(cat "$WORK/o4/made")" = made ] || fail "writable bind output missing"
pass "read-only binds with selectors, writable binds with outputs, tmpfs with size"

# cache mounts persist across builds (and across different steps using the same id)
run '{"steps":[{"run":"echo one >> /c/log; cat /c/log > /seen","mounts":[{"type":"cache","target":"/c","id":"pc"}]}]}' "$WORK/o5" ||
  fail "cache build 1 failed: $(cat "$WORK/progress")"
run '{"steps":[{"run":"echo two >> /c/log; cat /c/log > /seen","mounts":[{"type":"cache","target":"/c","id":"pc"}]}]}' "$WORK/o6" ||
  fail "cache build 2 failed: $(cat "$WORK/progress")"
[ "$(cat "$WORK/o6/seen")" = "$(printf 'one\ntwo')" ] || fail "cache mount did not persist: $(cat "$WORK/o6/seen")"
[ ! -e "$WORK/o6/c/log" ] || fail "cache content leaked into the result"
run '{"steps":[{"run":"mkdir -p /seed && echo seeded > /seed/s"},{"run":"cat /c/s > /got","mounts":[{"type":"cache","target":"/c","id":"fromcache","from":"step:0","selector":"/seed"}]}]}' "$WORK/o7" ||
  fail "cache from build failed: $(cat "$WORK/progress")"
[ "$(cat "$WORK/o7/got")" = seeded ] || fail "cache mount not initialized from its base"
pass "cache mounts persist between builds and start from their base"

# locked sharing serializes two concurrent builds; both see each other's writes
lock_spec() {
  echo '{"steps":[{"run":"if ! mkdir /c/busy; then echo OVERLAP; exit 9; fi; echo '"$1"' >> /c/order; sleep 1; rmdir /c/busy","mounts":[{"type":"cache","target":"/c","id":"lk","sharing":"locked"}]}]}'
}
lock_spec A | "$RUN_LLB" >"$WORK/defA"; lock_spec B | "$RUN_LLB" >"$WORK/defB"
start=$(date +%s.%N)
"$KILN" --addr "$sock" build --local rootfs="$rootfs" --progress quiet <"$WORK/defA" 2>"$WORK/pa" & pa=$!
"$KILN" --addr "$sock" build --local rootfs="$rootfs" --progress quiet <"$WORK/defB" 2>"$WORK/pb" & pb=$!
wait $pa || fail "locked build A failed: $(cat "$WORK/pa")"
wait $pb || fail "locked build B failed: $(cat "$WORK/pb")"
elapsed=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
awk -v e="$elapsed" 'BEGIN { exit !(e >= 2) }' || fail "locked cache mounts overlapped (took ${elapsed}s)"
pass "locked cache mounts serialize concurrent builds (${elapsed}s for two 1s steps)"

# network none has only loopback; host sees the host's interfaces
run '{"steps":[{"run":"cat /proc/net/dev > /none.txt","network":"none"}]}' "$WORK/o8" || fail "net none failed: $(cat "$WORK/progress")"
[ "$(tail -n +3 "$WORK/o8/none.txt" | awk -F: '{print $1}' | tr -d ' ')" = lo ] || fail "net none has: $(cat "$WORK/o8/none.txt")"
run '{"steps":[{"run":"cat /proc/net/dev > /host.txt; hostname > /hn.txt; cat /etc/hosts > /hosts.txt","extra_hosts":{"db.internal":"10.1.2.3"}}]}' "$WORK/o9" || fail "net default failed: $(cat "$WORK/progress")"
[ "$(tail -n +3 "$WORK/o9/host.txt" | wc -l)" -eq "$(tail -n +3 /proc/net/dev | wc -l)" ] || fail "default network is not the host's"
[ "$(cat "$WORK/o9/hn.txt")" = buildkitsandbox ] || fail "hostname: $(cat "$WORK/o9/hn.txt")"
assert_contains "$(cat "$WORK/o9/hosts.txt")" "10.1.2.3	db.internal" "extra hosts"
run '{"steps":[{"run":"hostname > /hn2.txt; ulimit -n > /nofile.txt","hostname":"builder-1","ulimits":{"nofile":[123,456]}}]}' "$WORK/o9b" || fail "hostname/ulimit failed: $(cat "$WORK/progress")"
[ "$(cat "$WORK/o9b/hn2.txt")" = builder-1 ] || fail "custom hostname: $(cat "$WORK/o9b/hn2.txt")"
[ "$(cat "$WORK/o9b/nofile.txt")" = 123 ] || fail "ulimit nofile: $(cat "$WORK/o9b/nofile.txt")"
pass "network none (loopback only), host network by default, hostname (default and custom), extra hosts, ulimits"

# security.insecure needs the daemon's permission and the build's request
run_fails '{"steps":[{"run":"true","security":"insecure"}]}'
assert_contains "$(cat "$WORK/progress")" "security.insecure is not allowed" "insecure without entitlement"
run_fails '{"steps":[{"run":"true"}]}' --allow security.insecure
assert_contains "$(cat "$WORK/progress")" "does not allow it" "entitlement the daemon does not allow"
pass "security.insecure is refused unless the daemon allows it"

# --- secrets: file and env, never on disk, never in logs
secret="kiln-secret-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s' "$secret" >"$WORK/secret.txt"
export KILN_TEST_TOKEN="$secret-env"
run '{"steps":[{"run":"test \"$(cat /run/secrets/tok)\" = \"$(cat /run/secrets/tok)\" && test -n \"$(cat /run/secrets/tok)\" && stat -c %a:%u /run/secrets/tok > /mode.txt && test \"${TOKEN%-env}\" = \"$(cat /run/secrets/tok)\" && echo ok > /checked",
                "secrets":[{"id":"tok","target":"/run/secrets/tok","uid":1000,"mode":288},{"id":"envtok","env":"TOKEN"}]}]}' "$WORK/o10" \
  --secret id=tok,src="$WORK/secret.txt" --secret id=envtok,env=KILN_TEST_TOKEN ||
  fail "secret build failed: $(cat "$WORK/progress")"
[ "$(cat "$WORK/o10/checked")" = ok ] || fail "secret not visible in the step"
[ "$(cat "$WORK/o10/mode.txt")" = "440:1000" ] || fail "secret mode/owner: $(cat "$WORK/o10/mode.txt")"
[ ! -s "$WORK/o10/run/secrets/tok" ] || fail "secret content in the result"
if grep -rqaF "$secret" "$root" "$WORK/o10" "$WORK"/*.log "$WORK/progress"; then
  fail "the secret's bytes were found on disk: $(grep -rlaF "$secret" "$root" "$WORK/o10" "$WORK"/*.log "$WORK/progress")"
fi
pass "secrets as files (mode, owner) and env reach the step and appear in no file, result or log"

run '{"steps":[{"args":["/bin/sh","-c","test -s /run/secrets/tok && echo ok > /default-target"],"secrets":[{"id":"tok"}]}]}' "$WORK/o10b" \
  --secret id=tok,src="$WORK/secret.txt" || fail "secret with default target failed: $(cat "$WORK/progress")"
[ "$(cat "$WORK/o10b/default-target")" = ok ] || fail "secret not at /run/secrets/tok"
pass "a secret without a target is mounted at /run/secrets/ID"

run '{"steps":[{"run":"yes xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx | head -c 3000000"}]}' "$WORK/o10c" || fail "big output build failed"
grep -q "output clipped, log limit 2MiB reached" "$WORK/progress" || fail "no log-limit notice: $(tail -5 "$WORK/progress")"
streamed=$(grep xxxx "$WORK/progress" | wc -c)
[ "$streamed" -le 2300000 ] && [ "$streamed" -ge 2000000 ] || fail "streamed $streamed bytes of 3 MB output (want about 2 MiB)"
pass "step output in the progress stream is capped at 2 MiB"

run_fails '{"steps":[{"run":"true","secrets":[{"id":"missing","target":"/s"}]}]}'
assert_contains "$(cat "$WORK/progress")" "secret missing not found" "missing secret"
run '{"steps":[{"run":"test ! -s /s && echo ok > /opt.txt","secrets":[{"id":"missing","target":"/s","optional":true}]}]}' "$WORK/o11" ||
  fail "optional missing secret failed: $(cat "$WORK/progress")"
pass "a required secret that is missing fails clearly; an optional one is skipped"

# --- ssh agent forwarding with a real ssh-agent and a throwaway key
if command -v ssh-agent >/dev/null && command -v ssh-keygen >/dev/null; then
  # ssh-add inside the container: the host's binary with its libraries.
  for f in $(command -v ssh-add) $(ldd "$(command -v ssh-add)" | grep -o '/[^ ]*'); do
    mkdir -p "$rootfs$(dirname "$f")"; cp -L "$f" "$rootfs$f"
  done
  ssh-keygen -q -t ed25519 -N '' -C kiln-test-key -f "$WORK/id_test"
  eval "$(ssh-agent -s -a "$WORK/agent.sock")" >/dev/null
  PIDS+=("$SSH_AGENT_PID")
  ssh-add -q "$WORK/id_test"
  run '{"steps":[{"run":"SSH_AUTH_SOCK=/run/buildkit/ssh_agent.0 '"$(command -v ssh-add)"' -l > /keys.txt","ssh":[{"id":"default"}]}]}' "$WORK/o12" --ssh default ||
    fail "ssh build failed: $(cat "$WORK/progress")"
  assert_contains "$(cat "$WORK/o12/keys.txt")" "kiln-test-key" "ssh-add -l in the container"
  run '{"steps":[{"run":"SSH_AUTH_SOCK=/s.sock '"$(command -v ssh-add)"' -l > /tmp/keys2.txt","ssh":[{"id":"deploy","target":"/s.sock","uid":1000}],"user":"kiln"}]}' "$WORK/o13" --ssh deploy="$WORK/id_test" ||
    fail "ssh key-file build failed: $(cat "$WORK/progress")"
  assert_contains "$(cat "$WORK/o13/tmp/keys2.txt")" "kiln-test-key" "ssh key file forwarded"
  run_fails '{"steps":[{"run":"true","ssh":[{"id":"nokey"}]}]}' --ssh default
  assert_contains "$(cat "$WORK/progress")" "nokey" "missing ssh id"
  kill "$SSH_AGENT_PID"
  pass "ssh agent forwarding: ssh-add -l in the container lists the client's key"
else
  echo "SKIP: ssh agent tests (openssh-client missing)"
fi

no_stray_state
pass "no mounts, containers or work dirs left after the builds above"

# --- 8 parallel builds with cache mounts and secrets
pids=()
for i in 1 2 3 4 5 6 7 8; do
  echo '{"steps":[{"run":"echo '"$i"' >> /c/p; test -n \"$(cat /run/secrets/tok)\"; sleep 0.5","mounts":[{"type":"cache","target":"/c","id":"par","sharing":"'"$( [ $((i % 2)) -eq 0 ] && echo shared || echo private)"'"}],"secrets":[{"id":"tok","target":"/run/secrets/tok"}]}]}' |
    "$RUN_LLB" >"$WORK/par$i.def"
  "$KILN" --addr "$sock" build --local rootfs="$rootfs" --secret id=tok,src="$WORK/secret.txt" \
    --progress quiet <"$WORK/par$i.def" 2>"$WORK/par$i.err" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "a parallel build failed: $(cat "$WORK"/par*.err)"; done
no_stray_state
pass "8 parallel builds with cache mounts and secrets leave nothing behind"

# --- a client killed mid-RUN: the container is killed, nothing is left
# A sleep no other process on the machine runs, so that pgrep finds this container only.
long_sleep="sleep $((3000000 + $$ % 100000))"
echo '{"steps":[{"run":"echo started; '"$long_sleep"'","mounts":[{"type":"cache","target":"/c","id":"k"}],"secrets":[{"id":"tok","target":"/run/secrets/tok"}]}]}' | "$RUN_LLB" >"$WORK/kill.def"
"$KILN" --addr "$sock" build --local rootfs="$rootfs" --secret id=tok,src="$WORK/secret.txt" \
  --progress plain <"$WORK/kill.def" 2>"$WORK/kill.progress" &
victim=$!
PIDS+=("$victim")
for _ in $(seq 100); do grep -q started "$WORK/kill.progress" && break; sleep 0.1; done
grep -q started "$WORK/kill.progress" || fail "the long step did not start: $(cat "$WORK/kill.progress")"
for _ in $(seq 50); do pgrep -f "$long_sleep" >/dev/null && break; sleep 0.1; done
pgrep -f "$long_sleep" >/dev/null || fail "no container process found: $(ps aux | grep -v grep | grep sleep)"
kill -KILL "$victim"
for _ in $(seq 100); do pgrep -f "$long_sleep" >/dev/null || break; sleep 0.1; done
if pgrep -f "$long_sleep" >/dev/null; then
  survivor=$(pgrep -f "$long_sleep" | head -n1)
  fail "the container outlived its client: $(ps -o pid,ppid,stat,args -p "$survivor"); parent: $(ps -o pid,ppid,args -p "$(ps -o ppid= -p "$survivor")")"
fi
sleep 0.5
no_stray_state
pass "a client killed mid-RUN: the container is killed and nothing is left"

# --- the daemon killed mid-RUN: the next start kills the orphaned container and cleans up
echo '{"steps":[{"run":"echo started; sleep 301","secrets":[{"id":"tok","target":"/run/secrets/tok"}]}]}' | "$RUN_LLB" >"$WORK/crash.def"
"$KILN" --addr "$sock" build --local rootfs="$rootfs" --secret id=tok,src="$WORK/secret.txt" \
  --progress plain <"$WORK/crash.def" 2>"$WORK/crash.progress" &
crash_client=$!
for _ in $(seq 100); do grep -q started "$WORK/crash.progress" && break; sleep 0.1; done
grep -q started "$WORK/crash.progress" || fail "the step before the crash did not start"
kill -KILL "$KILND_PID"
wait "$KILND_PID" 2>/dev/null || true
wait "$crash_client" 2>/dev/null || true
start_kilnd restarted --root "$root" --addr "$sock" --debug
for _ in $(seq 50); do pgrep -f "sleep 301" >/dev/null || break; sleep 0.1; done
if pgrep -f "sleep 301" >/dev/null; then fail "the orphaned container survived the restart"; fi
no_stray_state
run '{"steps":[{"run":"echo after-crash > /after"}]}' "$WORK/o15" || fail "build after a crash failed: $(cat "$WORK/progress")"
[ "$(cat "$WORK/o15/after")" = after-crash ] || fail "build after a crash produced the wrong tree"
pass "after a crash mid-RUN, the restarted daemon kills the orphan and cleans up"

# --- runc works the same
stop_kilnd "$KILND_PID"
if command -v runc >/dev/null; then
  start_kilnd runc --root "$root" --addr "$sock" --oci-worker-binary runc \
    --allow-insecure-entitlement security.insecure
  run '{"steps":[{"run":"id -u > /tmp/u; cat /proc/net/dev > /tmp/n","user":"kiln","network":"none","name":"runc step"}]}' "$WORK/o14" ||
    fail "runc build failed: $(cat "$WORK/progress")"
  [ "$(cat "$WORK/o14/tmp/u")" = 1000 ] || fail "runc user"
  run '{"steps":[{"run":"exit 4"}]}' "$WORK/x" && fail "runc exit 4 succeeded"
  assert_contains "$(cat "$WORK/progress")" "exit code: 4" "runc exit code"
  no_stray_state
  pass "runc runs steps too"
  run '{"steps":[{"run":"grep CapEff /proc/self/status > /insecure.txt; grep CapEff /proc/self/status > /dev/null","security":"insecure"},{"run":"grep CapEff /proc/self/status > /sandbox.txt"}]}' "$WORK/o16" --allow security.insecure ||
    fail "insecure build failed: $(cat "$WORK/progress")"
  [ "$(cat "$WORK/o16/insecure.txt")" != "$(cat "$WORK/o16/sandbox.txt")" ] || fail "insecure step had the sandbox's capabilities"
  pass "security.insecure runs with more capabilities when the daemon and the build allow it"
fi
