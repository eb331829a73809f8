#!/usr/bin/env bash
# Build cache through a real registry: inline cache in a pushed image, a registry cache in
# mode=min and mode=max, each imported by a fresh daemon (an empty state root) that must run no
# RUN step and push the same image; a changed source file reruns exactly the steps that depend
# on it; a missing or corrupted cache warns and the build goes on.
. "$(dirname "$0")/lib.sh"
start_busybox_registry
make_stages_context "$WORK/ctx"

# ---- inline cache ---------------------------------------------------------------------------
fresh inline1
build inline1 --output "type=image,name=$R/app:inline,push=true" --export-cache type=inline
[ "$(runs | wc -l)" -eq "$NRUNS" ] || fail "the cold build ran $(runs | wc -l) RUN steps: $(runs)"
d1=$(digest_of inline1)
[ -n "$d1" ] || fail "no image digest: $(cat "$WORK/inline1.json")"
fresh inline2
build inline2 --output "type=image,name=$R/app:inline,push=true" --export-cache type=inline --import-cache "type=registry,ref=$R/app:inline"
assert_rebuilt inline2 "$d1"
pass "inline cache: a fresh daemon rebuilds with no RUN and pushes the same image ($d1)"

# ---- registry cache, mode=max ---------------------------------------------------------------
fresh max1
build max1 --output "type=image,name=$R/app:max,push=true" --export-cache "type=registry,ref=$R/cache:max,mode=max"
dmax=$(digest_of max1)
fresh max2
mark=$(wc -l <"$WORK/registry.log")
build max2 --output "type=image,name=$R/app:max,push=true" --import-cache "type=registry,ref=$R/cache:max"
assert_rebuilt max2 "$dmax"
# Lazy import: of the cache's layers only the final image's were downloaded, not the earlier
# stages' (their records were hits that nothing needed the contents of). (The frontend still
# reads busybox's config from its own repository.)
accept="application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json"
manifest() { curl -sf -H "Accept: $accept" "http://$R/v2/$1/manifests/$2"; }
layers_of() { manifest "$1" "$2" | grep -o '"digest":"sha256:[0-9a-f]*"' | tail -n +2 | grep -o 'sha256:[0-9a-f]*' | sort -u; }
fetched=$(tail -n +"$((mark + 1))" "$WORK/registry.log" | grep -o 'GET /v2/cache/blobs/sha256:[0-9a-f]*' |
  grep -o 'sha256:[0-9a-f]*' | sort -u)
config=$(manifest cache max | grep -o '"config":{[^}]*' | grep -o 'sha256:[0-9a-f]*')
got=$(echo "$fetched" | grep -v "$config" | tr '\n' ' ')
want=$(layers_of app max | tr '\n' ' ')
[ "$got" = "$want" ] || fail "the mode=max rebuild downloaded [$got], the image's layers are [$want]"
[ "$(layers_of cache max | wc -l)" -gt "$(layers_of app max | wc -l)" ] ||
  fail "the mode=max cache holds no more layers than the image"
# Only the final stage changes: the earlier stages come from the cache, the last RUN runs.
sed -i 's/echo final/echo final changed/' "$ctx/Dockerfile"
fresh max3
build max3 --output "type=image,name=$R/app:max3,push=true" --import-cache "type=registry,ref=$R/cache:max"
[ "$(runs)" = 'run "[stage-3 4/4] RUN echo final changed >/final.txt"' ] ||
  fail "with only the last stage changed, these ran: $(runs)"
sed -i 's/echo final changed/echo final/' "$ctx/Dockerfile"
pass "registry cache mode=max: nothing runs on a fresh daemon; a changed last stage reruns only itself"

# ---- a changed source file reruns exactly what depends on it -----------------------------
echo "helper source, changed" >"$ctx/src/helper.txt"
fresh changed
build changed --output "type=image,name=$R/app:changed,push=true" --import-cache "type=registry,ref=$R/cache:max"
got=$(runs | sort | tr '\n' ';')
want='run "[build 3/3] RUN cat /src/main.txt /src/helper.txt >/app.out";run "[stage-3 4/4] RUN echo final >/final.txt";'
[ "$got" = "$want" ] || fail "after changing src/helper.txt, these ran: $got"
echo "helper source" >"$ctx/src/helper.txt"
pass "a changed source file reruns exactly what depends on it: its stage's RUN and the final RUN"

# ---- registry cache, mode=min ---------------------------------------------------------------
fresh min1
build min1 --output "type=image,name=$R/app:min,push=true" --export-cache "type=registry,ref=$R/cache:min"
dmin=$(digest_of min1)
fresh min2
build min2 --output "type=image,name=$R/app:min,push=true" --import-cache "type=registry,ref=$R/cache:min"
assert_rebuilt min2 "$dmin"
pass "registry cache mode=min: the final result is reused on a fresh daemon"

# Several sources at once: a missing one does not stop the others.
fresh multi
build multi --output "type=image,name=$R/app:multi,push=true" \
  --import-cache "type=registry,ref=$R/cache:absent" --import-cache "type=registry,ref=$R/cache:min"
[ "$(runs | wc -l)" -eq 0 ] || fail "a rebuild from two sources (one missing) ran: $(runs)"
pass "several cache sources at once; a missing one is skipped"

# ---- missing and corrupted caches warn, the build goes on ------------------------------------
fresh missing
build missing --output "type=image,name=$R/app:missing,push=true" --import-cache "type=registry,ref=$R/cache:nope"
assert_contains "$(cat "$WORK/missing.progress")" "cache:nope" "missing cache warning"
[ "$(runs | wc -l)" -eq "$NRUNS" ] || fail "the build with a missing cache ran $(runs | wc -l) RUN steps"
# Corrupt (same size, other bytes) every layer blob of the caches in the registry's storage that
# is not busybox's: the config still parses, the layers fail their digest check.
repos=$WORK/registry-storage/docker/registry/v2/repositories
for link in "$repos"/cache/_layers/sha256/*; do
  blob=$(basename "$link")
  [ -e "$repos/library/busybox/_layers/sha256/$blob" ] && continue
  data="$WORK/registry-storage/docker/registry/v2/blobs/sha256/${blob:0:2}/$blob/data"
  if gzip -t "$data" 2>/dev/null; then
    printf 'corrupted' | dd of="$data" bs=1 seek=20 conv=notrunc 2>/dev/null
  fi
done
fresh corrupt
build corrupt --output "type=image,name=$R/app:corrupt,push=true" --import-cache "type=registry,ref=$R/cache:max"
assert_contains "$(cat "$WORK/corrupt.progress")" "building this step instead" "corrupted cache warning"
pass "a missing or corrupted cache is a warning; the build succeeds without it"

# ---- secrets and cache mounts are never exported ----------------------------------------------
sctx=$WORK/sctx
mkdir -p "$sctx"
secret="kiln-cache-secret-$RANDOM$RANDOM"
printf '%s' "$secret" >"$WORK/secret.txt"
# The cache mount gets the secret transformed (upper case), which appears in no command text.
cat >"$sctx/Dockerfile" <<'DOCKERFILE'
FROM busybox
RUN --mount=type=secret,id=tok --mount=type=secret,id=tok,env=TOK --mount=type=cache,target=/c \
    sh -c 'test -n "$TOK" && tr a-z A-Z </run/secrets/tok >/c/x && echo ok >/done'
DOCKERFILE
sed -i "s|^FROM busybox|FROM $B|" "$sctx/Dockerfile"
upper=$(printf '%s' "$secret" | tr a-z A-Z)
fresh secret
k build --progress plain --secret "id=tok,src=$WORK/secret.txt" --metadata-file "$WORK/secret.json" \
  --output "type=image,name=$R/app:secret,push=true" --export-cache type=inline \
  --export-cache "type=registry,ref=$R/cache:secret,mode=max" "$sctx" 2>"$WORK/secret.progress" ||
  fail "the secret build failed: $(cat "$WORK/secret.progress")"
# Every blob the registry holds (layers decompressed, configs, manifests).
found=""
for data in $(find "$WORK/registry-storage" -name data -type f); do
  if gzip -t "$data" 2>/dev/null; then zcat "$data"; else cat "$data"; fi | grep -a -e "$secret" -e "$upper" >/dev/null && found="$found $data"
done
[ -z "$found" ] || fail "a secret or cache-mount content reached the registry:$found"
pass "cache exports hold no secret (file or env) and no cache-mount content"

# ---- buildctl, when one is available --------------------------------------------------------
BUILDCTL=${BUILDCTL:-$(command -v buildctl || true)}
if [ -n "$BUILDCTL" ] && [ -x "$BUILDCTL" ]; then
  bc() {
    local name=$1; shift
    "$BUILDCTL" --addr "unix://$WORK/k.sock" build --frontend dockerfile.v0 --local context="$ctx" \
      --local dockerfile="$ctx" --progress plain --metadata-file "$WORK/$name.json" "$@" \
      2>"$WORK/$name.progress" || fail "buildctl build $name failed: $(cat "$WORK/$name.progress")"
  }
  fresh bc1
  # BUILDKIT_INLINE_CACHE=1 (the frontend's option) instead of --export-cache type=inline.
  bc bc1 --output "type=image,name=$R/app:bc,push=true" --opt build-arg:BUILDKIT_INLINE_CACHE=1 \
    --export-cache "type=registry,ref=$R/cache:bc,mode=max"
  dbc=$(digest_of bc1)
  fresh bc2
  bc bc2 --output "type=image,name=$R/app:bc,push=true" --export-cache type=inline \
    --import-cache "type=registry,ref=$R/app:bc"
  [ "$(runs | wc -l)" -eq 0 ] || fail "buildctl's rebuild from inline cache ran: $(runs)"
  [ "$(digest_of bc2)" = "$dbc" ] || fail "buildctl's inline rebuild pushed another image"
  # The frontend's cache-from option instead of --import-cache.
  fresh bc3
  bc bc3 --output "type=image,name=$R/app:bc,push=true" --export-cache type=inline \
    --opt "cache-from=$R/cache:bc"
  [ "$(runs | wc -l)" -eq 0 ] || fail "buildctl's rebuild from the registry cache ran: $(runs)"
  [ "$(digest_of bc3)" = "$dbc" ] || fail "buildctl's registry-cache rebuild pushed another image"
  pass "buildctl: BUILDKIT_INLINE_CACHE, --export-cache type=registry,mode=max, --import-cache and --opt cache-from work"
fi
