#!/usr/bin/env bash
# TCP with --tlscert/--tlskey/--tlscacert: clients must present a certificate signed by the CA.
. "$(dirname "$0")/lib.sh"
command -v openssl >/dev/null || skip "openssl not installed"

pki="$WORK/pki"
mkdir -p "$pki"
cd "$pki"
mkca() {  # mkca NAME
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=$1" \
    -keyout "$1.key" -out "$1.pem" 2>/dev/null
}
mkcert() {  # mkcert NAME CA EXT
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$1" -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf '%s\n' "$3" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -days 1 \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
}
mkca ca
mkca rogue-ca
mkcert server ca "subjectAltName=IP:127.0.0.1,DNS:localhost"$'\n'"extendedKeyUsage=serverAuth"
mkcert client ca "extendedKeyUsage=clientAuth"
mkcert rogue rogue-ca "extendedKeyUsage=clientAuth"
cd - >/dev/null

start_kilnd tls --root "$WORK/root" --addr "tcp://127.0.0.1:0" \
  --tlscert "$pki/server.pem" --tlskey "$pki/server.key" --tlscacert "$pki/ca.pem"
addr=$KILND_ADDR
case "$addr" in tcp://127.0.0.1:*) ;; *) fail "unexpected address $addr" ;; esac

out=$("$KILN" --addr "$addr" --tlscacert "$pki/ca.pem" --tlscert "$pki/client.pem" \
  --tlskey "$pki/client.key" debug workers)
assert_contains "$out" "$(cat "$WORK/root/workerid")" "workers over mTLS"
pass "client with a CA-signed certificate is accepted"

rc=0
err=$("$KILN" --addr "$addr" --tlscacert "$pki/ca.pem" debug workers 2>&1) || rc=$?
[ "$rc" -ne 0 ] || fail "client without a certificate was accepted"
assert_contains "$err" "cannot reach kilnd at $addr" "no client cert"
pass "client without a certificate is refused"

rc=0
err=$("$KILN" --addr "$addr" --tlscacert "$pki/ca.pem" --tlscert "$pki/rogue.pem" \
  --tlskey "$pki/rogue.key" debug workers 2>&1) || rc=$?
[ "$rc" -ne 0 ] || fail "client with a certificate from another CA was accepted"
pass "client with a certificate from another CA is refused"

rc=0
err=$("$KILN" --addr "$addr" debug workers 2>&1) || rc=$?
[ "$rc" -ne 0 ] || fail "plaintext client was accepted by the TLS listener"
pass "plaintext client is refused"

"$KILN" --addr "$addr" --tlscacert "$pki/ca.pem" --tlscert "$pki/client.pem" \
  --tlskey "$pki/client.key" du >/dev/null || fail "daemon stopped answering after refusals"
stop_kilnd "$KILND_PID"
pass "daemon still serves after refusing clients, then stops cleanly"

rc=0
err=$("$KILND" --root "$WORK/root" --addr "tcp://127.0.0.1:0" --tlscert "$pki/server.pem" \
  --tlskey "$pki/server.key" 2>&1) || rc=$?
[ "$rc" -ne 0 ] || fail "kilnd served TLS without a client CA"
assert_contains "$err" "--tlscacert" "missing CA error"
pass "TLS without --tlscacert is refused at start"
