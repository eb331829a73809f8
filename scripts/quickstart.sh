#!/usr/bin/env bash
# Quick start: install dependencies, build kiln, and build the example image examples/hello
# offline into an OCI image tarball. `kiln build` starts kilnd itself when none runs at the
# default address (unix:///run/kiln/kilnd.sock, state in /var/lib/kiln) and says how to stop
# it; the daemon keeps running for the next builds.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -G Ninja >/dev/null
ninja -C build kilnd kiln

dir=${KILN_QUICKSTART_DIR:-/tmp/kiln-quickstart}
echo "== build examples/hello (multi-stage; a RUN step in crun with a cache mount and a secret)"
echo "   into the OCI image tarball $dir/hello-image.oci.tar"
unset KILN_HOST BUILDKIT_HOST
bash examples/hello/build.sh build/client/kiln "$dir"
echo "== the tarball"
tar tvf "$dir/hello-image.oci.tar" | head -n 8
echo "== kiln du"
build/client/kiln du
echo
build/client/kiln daemon status
echo "Stop it with: build/client/kiln daemon stop"
