#!/bin/sh
# Installs every Debian package renkei needs to build, test and run.
# Idempotent: when everything is present it prints nothing and exits at once.
set -eu

PACKAGES="build-essential cmake pkg-config
libzmq3-dev libmsgpack-dev liblmdb-dev libsodium-dev libjansson-dev libcsv-dev
libmicrohttpd-dev
lmdb-utils groff-base python3 python3-zmq python3-msgpack
dpkg-dev
clang"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

echo "renkei: installing Debian packages:$missing" >&2
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
    command -v sudo >/dev/null 2>&1 || {
        echo "renkei: need root to install:$missing (run this script as root, or install sudo)" >&2
        exit 1
    }
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists only when an install fails on stale ones.
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing >/dev/null ||
    { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q --no-install-recommends $missing >/dev/null; }
