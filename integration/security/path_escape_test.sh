#!/usr/bin/env bash
# Path-escape attempts through every way a build reads paths: COPY ../, symlinks in the context
# pointing out of it (absolute and relative), an ADD'ed tar with ../ entries, an absolute entry,
# a hard link out, and a file written through a symlink entry; RUN leaving a symlink to / that a
# later COPY writes through. Each build either fails with a message naming the problem or
# keeps everything inside the image: the host file outside the context never reaches an image,
# and nothing is written on the host outside the daemon's root.
. "$(dirname "$0")/../lib.sh"
start_busybox_registry
sock="unix://$WORK/k.sock"
start_kilnd main --root "$WORK/root" --addr "$sock"

marker="HOST-ONLY-$RANDOM$RANDOM"
mkdir -p "$WORK/outside"
printf '%s' "$marker" >"$WORK/outside/host-secret.txt"
ctx=$WORK/ctx/app
mkdir -p "$ctx"
echo "ok" >"$ctx/ok.txt"
ln -s "$WORK/outside/host-secret.txt" "$ctx/abs-link"
ln -s ../../outside/host-secret.txt "$ctx/rel-link"
ln -s / "$ctx/root-link"

# A tar that tries to leave its destination every way tar can.
t=$WORK/tar
mkdir -p "$t/src/t"
echo evil >"$t/src/x"; ln -s / "$t/src/s"; echo evil >"$t/src/t/via"; echo data >"$t/src/a"
ln "$t/src/a" "$t/src/h"; echo abs >"$t/src/abs"
tar -cf "$ctx/slip.tar" -P -C "$t" \
  --transform='s,^src/x$,../../escaped-x,;s,^src/s$,s,;s,^src/t/via$,s/tmp/escaped-via-symlink,;s,^src/a$,../../escaped-a,;s,^src/abs$,/tmp/escaped-abs,' \
  src/x src/s src/t/via src/a src/h src/abs

# build NAME DOCKERFILE-TEXT: rc in $rc, progress in $WORK/NAME.progress, output in $WORK/NAME.
build() {
  printf '%s\n' "$2" >"$ctx/Dockerfile"
  rc=0
  k build --progress plain --output "type=local,dest=$WORK/$1" "$ctx" 2>"$WORK/$1.progress" || rc=$?
}
# why NAME: the error the build reported, if it failed.
why() { [ "$rc" -eq 0 ] && echo "built" || grep -m1 -o 'ERROR: .*' "$WORK/$1.progress" | cut -c1-160; }
# contained NAME: the output (if any) holds no host data.
contained() {
  if [ -d "$WORK/$1" ] && grep -rqa "$marker" "$WORK/$1" 2>/dev/null; then
    fail "$1: the host file reached the image: $(grep -rla "$marker" "$WORK/$1")"
  fi
}
no_host_writes() {
  for f in /escaped-x /escaped-a /tmp/escaped-abs /tmp/escaped-via-symlink "$WORK/escaped-x" \
    "$WORK/ctx/escaped-x" "$WORK/escaped-a" /etc/kiln-escape; do
    [ ! -e "$f" ] || fail "a build wrote $f on the host"
  done
}

build up "FROM $B
COPY ../outside/host-secret.txt /x"
contained up
[ "$rc" -ne 0 ] || [ ! -e "$WORK/up/x" ] || fail "COPY ../ copied something: $(ls -la "$WORK/up")"
pass "COPY ../outside stays in the context: $(why up)"

build links "FROM $B
COPY abs-link rel-link /l/
COPY root-link/etc/passwd /p"
contained links
[ "$rc" -ne 0 ] && assert_contains "$(cat "$WORK/links.progress")" "is a symlink to $WORK/outside/host-secret.txt, which is not in the source" "links"
pass "symlinks in the context pointing out of it never bring host data in: $(why links)"

build slip "FROM $B
ADD slip.tar /dst/"
contained slip
no_host_writes
if [ "$rc" -eq 0 ]; then
  # Whatever was unpacked is inside the image; nothing outside the image's root.
  [ ! -e "$WORK/slip/../escaped-x" ] || fail "tar-slip escaped the output directory"
fi
pass "an ADD'ed tar with ../, absolute, hard-link and through-symlink entries stays inside: $(why slip)"

build runlink "FROM $B
RUN ln -s / /link && ln -s /etc /etclink
COPY ok.txt /link/etc/kiln-escape
COPY ok.txt /etclink/kiln-escape2"
contained runlink
no_host_writes
[ ! -e /etc/kiln-escape2 ] || fail "COPY through a symlink wrote the host's /etc"
[ "$rc" -eq 0 ] && { [ -e "$WORK/runlink/etc/kiln-escape" ] || fail "COPY through /link did not land in the image's /etc"; }
pass "COPY through symlinks made by RUN writes inside the image's root: $(why runlink)"

[ "$(cat "$WORK/outside/host-secret.txt")" = "$marker" ] || fail "the host file changed"
