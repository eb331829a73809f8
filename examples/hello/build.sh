#!/usr/bin/env bash
# Builds examples/hello offline into an OCI image tarball: the quick start's main job.
#   examples/hello/build.sh KILN OUTDIR [kiln build flags...]
# The base image is a busybox root filesystem made from Debian's busybox-static and put into a
# copy of the context; the secret is a fresh random token in OUTDIR (mode 0600). kiln starts
# kilnd when none runs at the default address, and says so.
set -euo pipefail
kiln=$1 out=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
ctx="$out/hello-context"
mkdir -p "$ctx"
cp "$here/Dockerfile" "$here/hello.sh" "$here/.dockerignore" "$ctx/"
rootfs="$ctx/rootfs"
if [ ! -x "$rootfs/bin/busybox" ]; then
  mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp"
  chmod 1777 "$rootfs/tmp"
  cp /bin/busybox "$rootfs/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
fi
token="$out/hello-token"
if [ ! -s "$token" ]; then
  (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$token")
fi
"$kiln" build --progress plain \
  --secret id=hello-token,src="$token" \
  --output type=oci,dest="$out/hello-image.oci.tar",name=kiln.example/hello:latest \
  --metadata-file "$out/hello-image.json" "$@" "$ctx"
echo "image: $out/hello-image.oci.tar"
echo "digest: $(sed -n 's/.*"containerimage.digest": *"\([^"]*\)".*/\1/p' "$out/hello-image.json")"
