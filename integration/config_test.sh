#!/usr/bin/env bash
# kilnd reads a buildkitd.toml-style config; flags win over the file; bad files fail clearly.
. "$(dirname "$0")/lib.sh"

cat >"$WORK/kilnd.toml" <<TOML
root = "$WORK/fileroot"
debug = true
unknownthing = 1
[grpc]
address = ["unix://$WORK/file.sock"]
[worker.oci]
gckeepstorage = "1GB"
[registry."docker.io"]
mirrors = ["mirror.invalid"]
TOML

start_kilnd fromfile --config "$WORK/kilnd.toml"
[ "$KILND_ADDR" = "unix://$WORK/file.sock" ] || fail "address from file not used: $KILND_ADDR"
[ -f "$WORK/fileroot/kilnd.lock" ] || fail "root from file not used"
grep -q "unknown key 'unknownthing'" "$WORK/fromfile.log" || fail "no warning for unknown key"
grep -q " debug " "$WORK/fromfile.log" || fail "debug from file not applied"
out=$("$KILN" --addr "$KILND_ADDR" debug workers --verbose)
assert_contains "$out" "Reserved space:" "gc policy"
assert_contains "$out" "1.074GB" "gckeepstorage 1GB (binary) in the GC policy"
stop_kilnd "$KILND_PID"
pass "config file sets root, address, debug and gckeepstorage; unknown keys warn"

start_kilnd flags --config "$WORK/kilnd.toml" --root "$WORK/flagroot" --addr "unix://$WORK/flag.sock"
[ "$KILND_ADDR" = "unix://$WORK/flag.sock" ] || fail "--addr did not win: $KILND_ADDR"
[ -f "$WORK/flagroot/kilnd.lock" ] || fail "--root did not win"
stop_kilnd "$KILND_PID"
pass "flags win over the config file"

printf 'root = 42\n' >"$WORK/bad.toml"
rc=0
err=$("$KILND" --config "$WORK/bad.toml" 2>&1) || rc=$?
[ "$rc" -ne 0 ] || fail "kilnd started with a bad config"
assert_contains "$err" "$WORK/bad.toml" "bad config error"
assert_contains "$err" "'root'" "bad config error"
pass "wrong type in config fails naming file and key"

printf '[grpc\n' >"$WORK/broken.toml"
rc=0
err=$("$KILND" --config "$WORK/broken.toml" 2>&1) || rc=$?
[ "$rc" -ne 0 ] || fail "kilnd started with malformed TOML"
assert_contains "$err" "line 1" "malformed config error"
pass "malformed TOML fails naming the line"

rc=0
err=$("$KILND" --root "$WORK/r" --addr "tcp://127.0.0.1:0" 2>&1) || rc=$?
[ "$rc" -ne 0 ] || fail "kilnd served plain TCP without --insecure-tcp"
assert_contains "$err" "--insecure-tcp" "plain tcp error"
pass "plain TCP needs --insecure-tcp"

start_kilnd insecure --root "$WORK/r" --addr "tcp://127.0.0.1:0" --insecure-tcp
out=$("$KILN" --addr "$KILND_ADDR" debug workers)
assert_contains "$out" "PLATFORMS" "workers over plain tcp"
stop_kilnd "$KILND_PID"
pass "plain TCP with --insecure-tcp serves"
