#!/usr/bin/env bash
# Build cache in a local directory on the client (type=local, an OCI layout the daemon reads and
# writes through the session): a mode=max export, then a fresh daemon (an empty state root)
# importing it runs no RUN step and pushes the same image. The same with the real buildctl when
# one is available, and across the two clients. A missing directory or corrupted blobs warn and
# the build goes on.
. "$(dirname "$0")/lib.sh"
start_busybox_registry

# The manifest DIR/index.json names "latest".
latest() { grep -o '"digest":"sha256:[0-9a-f]*"[^}]*"org.opencontainers.image.ref.name":"latest"' "$1/index.json" | grep -o 'sha256:[0-9a-f]*'; }
# assert_exported NAME DIR: build NAME, a cold build, ran every RUN step, pushed an image and
# left in DIR an OCI layout whose index.json names a cache manifest "latest".
assert_exported() {
  [ "$(runs | wc -l)" -eq "$NRUNS" ] || fail "$1, a cold build, ran $(runs | wc -l) RUN steps: $(runs)"
  [ -n "$(digest_of "$1")" ] || fail "$1 pushed no image: $(cat "$WORK/$1.json")"
  [ -f "$2/oci-layout" ] || fail "$1 left no oci-layout in $2"
  local m
  m=$(latest "$2")
  [ -n "$m" ] || fail "$2/index.json names no latest manifest: $(cat "$2/index.json")"
  grep -q 'application/vnd.buildkit.cacheconfig.v0' "$2/blobs/sha256/${m#sha256:}" ||
    fail "the latest manifest of $2 names no cache config"
}
make_stages_context "$WORK/ctx"

# ---- kiln: export, then import on a fresh daemon --------------------------------------------
C=$WORK/cache
fresh export1
build export1 --output "type=image,name=$R/app:local,push=true" --export-cache "type=local,dest=$C,mode=max"
assert_exported export1 "$C"
d1=$(digest_of export1)
m1=$(latest "$C")
[ -z "$(ls -A "$C/ingest" 2>/dev/null)" ] || fail "writes were left in $C/ingest: $(ls "$C/ingest")"
fresh import1
build import1 --output "type=image,name=$R/app:local,push=true" --import-cache "type=local,src=$C"
assert_rebuilt import1 "$d1"
pass "kiln local cache mode=max: a fresh daemon rebuilds with no RUN and pushes the same image ($d1)"

# Exporting again (into a copy) names the new manifest under the same tag, replacing the old
# entry; a changed source file reruns what depends on it.
cp -a "$C" "$WORK/cache-b"
echo "main source, changed" >"$ctx/src/main.txt"
fresh export2
build export2 --output "type=image,name=$R/app:local2,push=true" \
  --import-cache "type=local,src=$WORK/cache-b" --export-cache "type=local,dest=$WORK/cache-b,mode=max"
[ "$(runs | wc -l)" -eq 2 ] || fail "after changing src/main.txt, these ran: $(runs)"
m2=$(latest "$WORK/cache-b")
[ -n "$m2" ] && [ "$m2" != "$m1" ] || fail "index.json still names $m1 as latest"
[ "$(grep -o '"org.opencontainers.image.ref.name":"latest"' "$WORK/cache-b/index.json" | wc -l)" -eq 1 ] ||
  fail "index.json has more than one latest: $(cat "$WORK/cache-b/index.json")"
echo "main source" >"$ctx/src/main.txt"
pass "a second export replaces the latest entry of index.json"

# ---- missing and corrupted caches warn, the build goes on ------------------------------------
fresh missing
build missing --output "type=image,name=$R/app:missing,push=true" --import-cache "type=local,src=$WORK/nope"
assert_contains "$(cat "$WORK/missing.progress")" "local cache import at $WORK/nope" "missing cache warning"
[ "$(runs | wc -l)" -eq "$NRUNS" ] || fail "the build with a missing cache ran $(runs | wc -l) RUN steps"
# Corrupt (same size, other bytes) every layer blob of the cache: the manifest and config still
# read, each layer fails its digest check when the daemon copies it.
cp -a "$C" "$WORK/corrupt"
for data in "$WORK"/corrupt/blobs/sha256/*; do
  if gzip -t "$data" 2>/dev/null; then
    printf 'corrupted' | dd of="$data" bs=1 seek=20 conv=notrunc 2>/dev/null
  fi
done
fresh corrupt
build corrupt --output "type=image,name=$R/app:corrupt,push=true" --import-cache "type=local,src=$WORK/corrupt"
assert_contains "$(cat "$WORK/corrupt.progress")" "building this step instead" "corrupted cache warning"
[ "$(runs | wc -l)" -gt 0 ] || fail "nothing ran with a corrupted cache"
# A changed cache config: the import is dropped with a warning, the build runs everything.
cp -a "$C" "$WORK/badconfig"
config=$(grep -o '"config":{[^}]*' "$C/blobs/sha256/${m1#sha256:}" | grep -o 'sha256:[0-9a-f]*')
printf 'X' | dd of="$WORK/badconfig/blobs/sha256/${config#sha256:}" bs=1 seek=1 conv=notrunc 2>/dev/null
fresh badconfig
build badconfig --output "type=image,name=$R/app:badconfig,push=true" --import-cache "type=local,src=$WORK/badconfig"
assert_contains "$(cat "$WORK/badconfig.progress")" "building without it" "corrupted config warning"
[ "$(runs | wc -l)" -eq "$NRUNS" ] || fail "with a corrupted cache config, $(runs | wc -l) RUN steps ran"
pass "a missing or corrupted local cache is a warning; the build succeeds without it"

# ---- buildctl --------------------------------------------------------------------------------
BUILDCTL=${BUILDCTL:-$(command -v buildctl || true)}
[ -n "$BUILDCTL" ] || [ ! -x /opt/buildctl/buildctl ] || BUILDCTL=/opt/buildctl/buildctl
if [ -z "$BUILDCTL" ] || [ ! -x "$BUILDCTL" ]; then
  echo "# buildctl not found (set BUILDCTL): its part is skipped"
  exit 0
fi
# bctl NAME [buildctl build flags...]: builds $ctx with the Dockerfile frontend.
bctl() {
  local name=$1; shift
  "$BUILDCTL" --addr "unix://$WORK/k.sock" build --frontend dockerfile.v0 --local context="$ctx" \
    --local dockerfile="$ctx" --progress plain --metadata-file "$WORK/$name.json" "$@" \
    2>"$WORK/$name.progress" || fail "buildctl build $name failed: $(cat "$WORK/$name.progress")"
}
C2=$WORK/cache2
fresh bexport
bctl bexport --output "type=image,name=$R/app:bctl,push=true" --export-cache "type=local,dest=$C2,mode=max"
assert_exported bexport "$C2"
db=$(digest_of bexport)
fresh bimport
bctl bimport --output "type=image,name=$R/app:bctl,push=true" --import-cache "type=local,src=$C2"
assert_rebuilt bimport "$db"
pass "buildctl local cache mode=max: a fresh daemon rebuilds with no RUN and pushes the same image"

# Across clients: each reads the directory the other wrote.
fresh cross1
build cross1 --output "type=image,name=$R/app:cross1,push=true" --import-cache "type=local,src=$C2"
[ "$(runs | wc -l)" -eq 0 ] || fail "kiln importing buildctl's cache directory ran: $(runs)"
fresh cross2
bctl cross2 --output "type=image,name=$R/app:cross2,push=true" --import-cache "type=local,src=$C"
[ "$(runs | wc -l)" -eq 0 ] || fail "buildctl importing kiln's cache directory ran: $(runs)"
pass "kiln and buildctl each import the other's local cache directory"
