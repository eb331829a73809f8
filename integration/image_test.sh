#!/usr/bin/env bash
# Images as build bases: a busybox image made offline (make-busybox-image) and pushed to a real
# docker-registry on loopback, pulled by tag and by digest through `docker-image://` sources,
# with RUN steps on top; layers are shared and a re-solve is cached.
. "$(dirname "$0")/lib.sh"
: "${RUN_LLB:?RUN_LLB must name the run-llb binary}"
: "${MAKE_BUSYBOX_IMAGE:?MAKE_BUSYBOX_IMAGE must name the make-busybox-image binary}"
[ "$(id -u)" -eq 0 ] || skip "containers need root"
[ -x /bin/busybox ] || skip "busybox-static is not installed"

start_registry registry
digest=$("$MAKE_BUSYBOX_IMAGE" --push "$REGISTRY/library/busybox:latest" --push "$REGISTRY/other/busybox:1") ||
  fail "could not seed the registry"
pass "seeded $REGISTRY with busybox ($digest)"

root="$WORK/root"
sock="unix://$WORK/k.sock"
start_kilnd main --root "$root" --addr "$sock" --debug

run() {  # run SPEC OUTDIR [kiln args...]
  local spec=$1 out=$2; shift 2
  echo "$spec" | "$RUN_LLB" >"$WORK/def" || fail "run-llb rejected: $spec"
  "$KILN" --addr "$sock" build --output type=local,dest="$out" --progress plain "$@" \
    <"$WORK/def" 2>"$WORK/progress"
}

run '{"image":"'"$REGISTRY"'/library/busybox:latest","steps":[{"run":"echo from-image > /hello; ls /bin | wc -l > /count"}]}' "$WORK/o1" ||
  fail "build on the image failed: $(cat "$WORK/progress")"
[ "$(cat "$WORK/o1/hello")" = from-image ] || fail "RUN on the image did not run"
[ "$(cat "$WORK/o1/count")" -gt 100 ] || fail "the image's applets are missing"
[ -x "$WORK/o1/bin/busybox" ] || fail "the image's rootfs is not in the result"
assert_contains "$(cat "$WORK/progress")" "docker-image://$REGISTRY/library/busybox:latest" "progress"
pass "a RUN step on an image pulled by tag"

run '{"image":"'"$REGISTRY"'/library/busybox:latest","steps":[{"run":"echo from-image > /hello; ls /bin | wc -l > /count"}]}' "$WORK/o2" ||
  fail "rebuild failed: $(cat "$WORK/progress")"
[ "$(grep -c CACHED "$WORK/progress")" -ge 2 ] || fail "rebuild not cached: $(cat "$WORK/progress")"
pass "an unchanged rebuild is cached (one manifest request, no downloads)"

run '{"image":"'"$REGISTRY"'/other/busybox@'"$digest"'","steps":[{"run":"cat /etc/passwd > /p"}]}' "$WORK/o3" ||
  fail "build by digest failed: $(cat "$WORK/progress")"
assert_contains "$(cat "$WORK/o3/p")" "root:x:0:0" "image passwd"
layers=$("$KILN" --addr "$sock" du -v | grep -c "pulled layer" || true)
[ "$layers" -eq 1 ] || fail "the same layer was unpacked $layers times: $("$KILN" --addr "$sock" du -v)"
pass "pulled by digest from another repository, sharing the unpacked layer"

rc=0
run '{"image":"'"$REGISTRY"'/library/nosuch:latest","steps":[{"run":"true"}]}' "$WORK/x" || rc=$?
[ "$rc" -ne 0 ] || fail "a missing image built"
assert_contains "$(cat "$WORK/progress")" "nosuch" "missing image error"
assert_contains "$(cat "$WORK/progress")" "not found" "missing image error"
pass "a missing image fails with a message naming it"

# ---- Image exporters ------------------------------------------------------------------------
build() {  # build SPEC [kiln args...]: the build's progress goes to $WORK/progress
  local spec=$1; shift
  echo "$spec" | "$RUN_LLB" >"$WORK/def" || fail "run-llb rejected: $spec"
  "$KILN" --addr "$sock" build --progress plain "$@" <"$WORK/def" 2>"$WORK/progress"
}
md_value() {  # md_value FILE KEY: a string value of a --metadata-file
  sed -n 's/^ *"'"$1"'": "\([^"]*\)".*/\1/p' "$2" | head -n1
}
app='{"image":"'"$REGISTRY"'/library/busybox:latest","steps":[{"run":"echo pushed-content > /pushed"}]}'

command -v curl >/dev/null || skip "curl is not installed"
manifest_of() {  # manifest_of REPO REF: prints the manifest; response headers in $WORK/headers
  curl -fsS -D "$WORK/headers" -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$REGISTRY/v2/$1/manifests/$2"
}
layer_digest() { echo "$1" | grep -o 'sha256:[0-9a-f]\{64\}' | sed -n "$(($2 + 1))p"; }  # JSON N
base_manifest=$(manifest_of library/busybox latest) || fail "the registry lost busybox"
base_layer=$(layer_digest "$base_manifest" 1)
[ -n "$base_layer" ] || fail "no layer in $base_manifest"

# Without force-compression the pulled base layer keeps its original (gzip) blob while the new
# layer is zstd; with it, every layer is recompressed.
build "$app" --output "type=image,name=$REGISTRY/test/app:zstd,push=true,compression=zstd" ||
  fail "zstd push failed: $(cat "$WORK/progress")"
zstd_manifest=$(manifest_of test/app zstd) || fail "the registry has no test/app:zstd"
[ "$(layer_digest "$zstd_manifest" 1)" = "$base_layer" ] ||
  fail "compression=zstd recompressed the pulled base layer: $zstd_manifest"
assert_contains "$zstd_manifest" '"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd"' "zstd manifest"
# The base layer came from library/busybox on the same registry: mounted, not uploaded.
grep -q '"POST /v2/test/app/blobs/uploads/?mount=sha256%3A'"${base_layer#sha256:}"'&from=library%2Fbusybox HTTP/1.1" 201' \
  "$WORK/registry.log" || fail "the base layer was not mounted from library/busybox: $(grep 'test/app/blobs' "$WORK/registry.log")"
! grep -q "PUT /v2/test/app/blobs/uploads/[^ ]*digest=sha256%3A${base_layer#sha256:}" "$WORK/registry.log" ||
  fail "the base layer was uploaded although the registry had it"
build "$app" --output "type=image,name=$REGISTRY/test/app:forced,push=true,compression=zstd,force-compression=true" ||
  fail "forced zstd push failed: $(cat "$WORK/progress")"
forced_manifest=$(manifest_of test/app forced) || fail "the registry has no test/app:forced"
[ "$(layer_digest "$forced_manifest" 1)" != "$base_layer" ] ||
  fail "force-compression=true kept the gzip base layer: $forced_manifest"
[ "$(echo "$forced_manifest" | grep -c 'tar+gzip')" -eq 0 ] ||
  fail "force-compression=true left gzip layers: $forced_manifest"
build '{"image":"'"$REGISTRY"'/test/app:forced","steps":[{"run":"cat /pushed > /back"}]}' \
  --output type=local,dest="$WORK/back3" || fail "pulling the zstd image failed: $(cat "$WORK/progress")"
[ "$(cat "$WORK/back3/back")" = pushed-content ] || fail "the zstd image lacks the built file"
pass "pulled base layers keep their blobs unless force-compression=true; pushes mount them across repositories"

build "$app" --output "type=image,name=$REGISTRY/test/app:v1,push=true" --metadata-file "$WORK/md1.json" ||
  fail "build with push failed: $(cat "$WORK/progress")"
pushed=$(md_value containerimage.digest "$WORK/md1.json")
[[ "$pushed" =~ ^sha256:[0-9a-f]{64}$ ]] || fail "no containerimage.digest: $(cat "$WORK/md1.json")"
[ "$(md_value image.name "$WORK/md1.json")" = "$REGISTRY/test/app:v1" ] || fail "image.name: $(cat "$WORK/md1.json")"
[[ "$(md_value containerimage.config.digest "$WORK/md1.json")" =~ ^sha256: ]] ||
  fail "no containerimage.config.digest: $(cat "$WORK/md1.json")"
grep -q '"mediaType"' "$WORK/md1.json" || fail "containerimage.descriptor not decoded: $(cat "$WORK/md1.json")"
assert_contains "$(cat "$WORK/progress")" "exporting to image" "progress"
assert_contains "$(cat "$WORK/main.log")" "exported image image $pushed" "daemon log"
app_manifest=$(manifest_of test/app v1) || fail "the registry has no test/app:v1"
tagged=$(sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: *\(sha256:[0-9a-f]*\).*/\1/p' "$WORK/headers")
[ "$tagged" = "$pushed" ] || fail "the registry's test/app:v1 is '$tagged', the build said $pushed"
assert_contains "$app_manifest" '"mediaType":"application/vnd.docker.distribution.manifest.v2+json"' \
  "manifest (oci-mediatypes defaults to false, as BuildKit's)"
[ "$(layer_digest "$app_manifest" 1)" = "$base_layer" ] ||
  fail "the pushed image does not re-use the base image's layer blob: $app_manifest"
[ "$(echo "$app_manifest" | grep -o 'sha256:[0-9a-f]\{64\}' | wc -l)" -eq 3 ] ||
  fail "the pushed manifest should have a config and two layers: $app_manifest"
pass "type=image,push=true pushed $REGISTRY/test/app:v1 ($pushed)"

build '{"image":"'"$REGISTRY"'/test/app:v1","steps":[{"run":"cat /pushed > /back; ls /bin | wc -l > /count"}]}' \
  --output type=local,dest="$WORK/back" || fail "build on the pushed image failed: $(cat "$WORK/progress")"
[ "$(cat "$WORK/back/back")" = pushed-content ] || fail "the pushed image lacks the built file"
[ "$(cat "$WORK/back/count")" -gt 100 ] || fail "the pushed image lacks the base image's files"
build '{"image":"'"$REGISTRY"'/test/app@'"$pushed"'","steps":[{"run":"cat /pushed > /back"}]}' \
  --output type=local,dest="$WORK/back2" || fail "pull by the pushed digest failed: $(cat "$WORK/progress")"
[ "$(cat "$WORK/back2/back")" = pushed-content ] || fail "the image at $pushed lacks the built file"
pass "the pushed image pulls back by tag and by the reported digest"

rc=0
build "$app" --output "type=image,push=true" || rc=$?
[ "$rc" -ne 0 ] || fail "push=true without a name succeeded"
assert_contains "$(cat "$WORK/progress")" "name" "push without name error"
pass "push=true without a name is an error"

build "$app" --output "type=oci,dest=$WORK/app.oci.tar,name=test/app:v1" --metadata-file "$WORK/md2.json" ||
  fail "oci export failed: $(cat "$WORK/progress")"
list=$(tar tf "$WORK/app.oci.tar") || fail "the oci export is not a tar"
assert_contains "$list" "index.json" "oci archive"
assert_contains "$list" "oci-layout" "oci archive"
assert_contains "$list" "blobs/sha256/" "oci archive"
oci_digest=$(md_value containerimage.digest "$WORK/md2.json")
tar xOf "$WORK/app.oci.tar" index.json | grep -q "${oci_digest#sha256:}" ||
  fail "index.json does not name $oci_digest: $(tar xOf "$WORK/app.oci.tar" index.json)"
tar xOf "$WORK/app.oci.tar" "blobs/sha256/${oci_digest#sha256:}" | grep -q 'application/vnd.oci.image.manifest.v1+json' ||
  fail "the oci export's manifest does not have the OCI media type"
if command -v skopeo >/dev/null; then
  skopeo inspect "oci-archive:$WORK/app.oci.tar" >"$WORK/skopeo.json" 2>&1 ||
    fail "skopeo cannot read the oci archive: $(cat "$WORK/skopeo.json")"
  assert_contains "$(cat "$WORK/skopeo.json")" "$oci_digest" "skopeo inspect"
  assert_contains "$(cat "$WORK/skopeo.json")" '"Architecture"' "skopeo inspect"
  pass "type=oci streams an OCI layout tar that skopeo reads"
else
  pass "type=oci streams an OCI layout tar (skopeo not installed: not inspected)"
fi
if command -v umoci >/dev/null; then
  mkdir "$WORK/layout" && tar xf "$WORK/app.oci.tar" -C "$WORK/layout"
  umoci unpack --image "$WORK/layout:v1" "$WORK/bundle" >"$WORK/umoci.out" 2>&1 ||
    fail "umoci cannot unpack the oci archive: $(cat "$WORK/umoci.out")"
  [ "$(cat "$WORK/bundle/rootfs/pushed")" = pushed-content ] || fail "umoci's rootfs lacks the built file"
  [ -x "$WORK/bundle/rootfs/bin/busybox" ] || fail "umoci's rootfs lacks the base image"
  pass "umoci unpacks the oci archive (tag v1) with both layers"
fi

build "$app" --output "type=docker,dest=-,name=$REGISTRY/test/app:v2" >"$WORK/app.docker.tar" ||
  fail "docker export failed: $(cat "$WORK/progress")"
manifest=$(tar xOf "$WORK/app.docker.tar" manifest.json) || fail "no manifest.json in the docker export"
assert_contains "$manifest" '"RepoTags":["'"$REGISTRY"'/test/app:v2"]' "manifest.json"
assert_contains "$manifest" '"Layers":' "manifest.json"
repositories=$(tar xOf "$WORK/app.docker.tar" repositories) || fail "no repositories in the docker export"
top_layer=$(echo "$manifest" | grep -o 'blobs/sha256/[0-9a-f]*' | tail -n1)
[ "$repositories" = '{"'"$REGISTRY"'/test/app":{"v2":"'"${top_layer##*/}"'"}}' ] ||
  fail "repositories does not name the top layer ${top_layer##*/}: $repositories"
for f in $(echo "$manifest" | grep -o 'blobs/sha256/[0-9a-f]*'); do
  [ "$(tar xOf "$WORK/app.docker.tar" "$f" | sha256sum | cut -d' ' -f1)" = "${f##*/}" ] ||
    fail "manifest.json names $f, which is missing or does not match its digest"
done
if command -v skopeo >/dev/null; then
  skopeo inspect "docker-archive:$WORK/app.docker.tar" >"$WORK/skopeo2.json" 2>&1 ||
    fail "skopeo cannot read the docker archive: $(cat "$WORK/skopeo2.json")"
  assert_contains "$(cat "$WORK/skopeo2.json")" '"Architecture"' "skopeo inspect docker-archive"
fi
pass "type=docker,dest=- streams a docker-load tar: manifest.json, repositories, verified blobs"

# Reproducible: SOURCE_DATE_EPOCH (from the environment, as a build argument) and
# rewrite-timestamp=true give the same image from two uncached builds.
for i in 1 2; do
  SOURCE_DATE_EPOCH=1700000000 build "$app" --no-cache \
    --output "type=oci,dest=$WORK/repro$i.tar,rewrite-timestamp=true" --metadata-file "$WORK/repro$i.json" ||
    fail "reproducible build $i failed: $(cat "$WORK/progress")"
done
r1=$(md_value containerimage.digest "$WORK/repro1.json")
r2=$(md_value containerimage.digest "$WORK/repro2.json")
[ -n "$r1" ] && [ "$r1" = "$r2" ] || fail "SOURCE_DATE_EPOCH builds differ: $r1 vs $r2"
cmp -s "$WORK/repro1.tar" "$WORK/repro2.tar" || fail "SOURCE_DATE_EPOCH archives differ"
config=$(md_value containerimage.config.digest "$WORK/repro1.json")
tar xOf "$WORK/repro1.tar" "blobs/sha256/${config#sha256:}" | grep -q '"created":"2023-11-14T22:13:20Z"' ||
  fail "the image config's created is not SOURCE_DATE_EPOCH: $(tar xOf "$WORK/repro1.tar" "blobs/sha256/${config#sha256:}")"
SOURCE_DATE_EPOCH=1700000001 build "$app" --no-cache \
  --output "type=oci,dest=$WORK/repro3.tar,rewrite-timestamp=true" --metadata-file "$WORK/repro3.json" ||
  fail "reproducible build 3 failed: $(cat "$WORK/progress")"
[ "$(md_value containerimage.digest "$WORK/repro3.json")" != "$r1" ] || fail "another epoch gave the same image"
pass "two --no-cache builds with SOURCE_DATE_EPOCH and rewrite-timestamp give one digest ($r1)"

kill "$REGISTRY_PID"; wait "$REGISTRY_PID" 2>/dev/null || true
run '{"image":"'"$REGISTRY"'/other/busybox@'"$digest"'","steps":[{"run":"cat /etc/group > /g"}]}' "$WORK/o4" ||
  fail "build by digest with the registry down failed: $(cat "$WORK/progress")"
pass "an image pinned by digest builds offline once its content is here"
