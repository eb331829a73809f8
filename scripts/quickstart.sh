#!/usr/bin/env bash
# Quick start: install dependencies, build, start kilnd on a scratch root and socket, and show
# its worker through the kiln CLI. The daemon keeps running; the script says how to stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -G Ninja >/dev/null
ninja -C build kilnd kiln hello-llb

dir=${KILN_QUICKSTART_DIR:-/tmp/kiln-quickstart}
mkdir -p "$dir"
sock="$dir/kilnd.sock"
addr="unix://$sock"
if ! build/client/kiln --addr "$addr" version >/dev/null 2>&1; then
  nohup build/daemon/kilnd --root "$dir/root" --addr "$addr" >"$dir/kilnd.log" 2>&1 &
  echo $! >"$dir/kilnd.pid"
  for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
fi
echo "== kiln version"
build/client/kiln --addr "$addr" version
echo "== kiln debug workers"
build/client/kiln --addr "$addr" debug workers
echo "== build: hello-llb's graph over llb/examples, into $dir/out"
build/llb/hello-llb | build/client/kiln --addr "$addr" build --progress plain \
  --local context=llb/examples --output type=local,dest="$dir/out"
ls -l "$dir/out"
echo "== build an image offline from examples/hello/Dockerfile (multi-stage, a RUN step in crun"
echo "   with a cache mount), exported as an OCI image tarball to $dir/hello-image.oci.tar"
ctx="$dir/hello-context"
mkdir -p "$ctx"
cp examples/hello/Dockerfile examples/hello/hello.sh examples/hello/.dockerignore "$ctx/"
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
build/client/kiln --addr "$addr" build --progress plain \
  --output type=oci,dest="$dir/hello-image.oci.tar",name=kiln.example/hello:latest \
  --metadata-file "$dir/hello-image.json" "$ctx"
echo "image digest: $(sed -n 's/.*"containerimage.digest": *"\([^"]*\)".*/\1/p' "$dir/hello-image.json")"
tar tf "$dir/hello-image.oci.tar" | head -n 8
echo "== kiln du"
build/client/kiln --addr "$addr" du
echo
echo "kilnd is running at $addr (root $dir/root, log $dir/kilnd.log)."
echo "Use it:   export KILN_HOST=$addr; build/client/kiln debug workers"
echo "Stop it:  kill \$(cat $dir/kilnd.pid)"
