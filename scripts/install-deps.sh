#!/usr/bin/env bash
# Installs what kiln needs to build and test, from Debian's packages only.
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends \
  ca-certificates git cmake ninja-build pkg-config g++ clang-format \
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev \
  libboost-dev libboost-system-dev libssl-dev libarchive-dev libspdlog-dev libfmt-dev \
  libgtest-dev libgmock-dev libsqlite3-dev nlohmann-json3-dev libcli11-dev \
  libtomlplusplus-dev libzstd-dev libre2-dev openssl openssh-client \
  crun runc busybox-static procps skopeo umoci zstd docker-registry curl
