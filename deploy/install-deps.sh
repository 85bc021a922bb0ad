#!/bin/sh
# Installs every Debian package renkei needs to build, test and run.
# Idempotent: when everything is present it prints nothing and exits at once.
set -eu

PACKAGES="build-essential cmake pkg-config
libzmq3-dev libmsgpack-dev liblmdb-dev libsodium-dev libjansson-dev libcsv-dev
libmicrohttpd-dev libuv1-dev
lmdb-utils groff-base python3 python3-zmq python3-msgpack
dpkg-dev
clang
chromium chromium-driver python3-selenium python3-yaml fonts-ipafont-gothic openssl"
# The board's browser libraries are installed at build time by `npm ci`
# (agents/gateway/web/package-lock.json). Debian's nodejs and npm do it;
# a machine with Node.js from elsewhere (its npm on PATH) keeps its own,
# since Debian's npm would conflict with it.
if ! command -v npm >/dev/null 2>&1; then
    PACKAGES="$PACKAGES nodejs npm"
fi

# Raft: libraft 0.22 from Debian's official bookworm-backports suite, never
# the 0.15 of bookworm main (it lacks Raft's rule 5.4.2 for committing
# entries of earlier terms). The suite is added on the mirror this
# machine's own apt sources name, and pinned so that only libraft comes
# from it.
RAFT_PACKAGES="libraft-dev libraft0"
raft_ok() {
    v=$(dpkg-query -W -f='${Version}' libraft-dev 2>/dev/null) || return 1
    case $v in 0.22.*) return 0 ;; *) return 1 ;; esac
}

# The URI of the mirror the sources use for "bookworm" itself.
debian_mirror() {
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        awk 'BEGIN { RS = ""; FS = "\n" }
             /(^|\n)Suites:[^\n]*[ \t]bookworm([ \t]|\n|$)/ || /(^|\n)Suites:[ \t]*bookworm([ \t]|\n|$)/ {
                 for (i = 1; i <= NF; i++)
                     if ($i ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", $i); split($i, u, " "); print u[1]; exit }
             }' "$f"
    done | head -n 1
    [ -r /etc/apt/sources.list ] &&
        awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) break;
                           if ($(i + 1) == "bookworm") { print $i; exit } }' /etc/apt/sources.list
}

enable_backports() {
    mirror=$(debian_mirror | head -n 1)
    [ -n "$mirror" ] || {
        echo "renkei: no Debian bookworm mirror in the apt sources; add bookworm-backports by hand, then install: $RAFT_PACKAGES" >&2
        exit 1
    }
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$mirror" | $SUDO tee /etc/apt/sources.list.d/renkei-bookworm-backports.sources >/dev/null
    printf 'Package: *\nPin: release n=bookworm-backports\nPin-Priority: 100\n\nPackage: %s\nPin: release n=bookworm-backports\nPin-Priority: 990\n' \
        "$RAFT_PACKAGES" | $SUDO tee /etc/apt/preferences.d/renkei-bookworm-backports >/dev/null
    $SUDO apt-get update -q >/dev/null
}

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
raft_ok || missing="$missing $RAFT_PACKAGES"
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
if ! raft_ok; then
    . /etc/os-release
    [ "${VERSION_CODENAME:-}" = bookworm ] || {
        echo "renkei: libraft 0.22 is taken from Debian bookworm-backports; this is ${PRETTY_NAME:-not Debian 12}: install libraft-dev 0.22 by hand" >&2
        exit 1
    }
    [ -r /etc/apt/sources.list.d/renkei-bookworm-backports.sources ] || enable_backports
fi
# Refresh the package lists only when an install fails on stale ones.
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing >/dev/null ||
    { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q --no-install-recommends $missing >/dev/null; }
