#!/usr/bin/env bash
# Builds (or reuses) Debian chroots holding the Kamailio versions that the tests run beside the
# host's own: trixie (6.0.x) and sid (6.1.x). Usage: scripts/kamailio-chroot.sh [SUITE...]
# (default: trixie sid). Prints "SUITE DIR VERSION" per chroot.
#
# - Cache outside the repository: $KAMAILIO_CHROOT_CACHE, else /var/cache/kamailio-probe-exporter/
#   chroots as root, else ${XDG_CACHE_HOME:-~/.cache}/kamailio-probe-exporter/chroots. A chroot
#   that is complete (kamailio installed) is reused as it is; tests/kamailio_harness.py reads the
#   same location.
# - The Debian mirror comes from this machine's apt sources, read at run time.
# - mmdebstrap (debootstrap where it is missing), variant apt, no Recommends: kamailio,
#   kamailio-tls-modules (+ $KAMAILIO_CHROOT_EXTRA, comma-separated). It builds into SUITE.new and
#   renames when done, so an interrupted build is never taken for a chroot.
# - Acquire::Check-Valid-Until false: a machine clock ahead of the archive would see sid's
#   InRelease as expired; signatures are still checked.
# - One build at a time per cache (flock): several checkouts may share it.
# Needs root (chroot, package installs); bounded by `timeout` ($KAMAILIO_CHROOT_TIMEOUT, 900 s).
set -euo pipefail

if [ -n "${KAMAILIO_CHROOT_CACHE:-}" ]; then
    CACHE=$KAMAILIO_CHROOT_CACHE
elif [ "$(id -u)" -eq 0 ]; then
    CACHE=/var/cache/kamailio-probe-exporter/chroots
else
    CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/kamailio-probe-exporter/chroots
fi
TIMEOUT=${KAMAILIO_CHROOT_TIMEOUT:-900}
EXTRA=${KAMAILIO_CHROOT_EXTRA:-}
[ $# -gt 0 ] || set -- trixie sid

if [ "$(id -u)" -ne 0 ]; then
    echo "kamailio-chroot.sh needs root (chroot and package installs)" >&2
    exit 2
fi

mirror() {
    # The first non-security Debian archive in the apt sources (deb822 or one-line format).
    local found=""
    if compgen -G "/etc/apt/sources.list.d/*.sources" >/dev/null; then
        found=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' \
            /etc/apt/sources.list.d/*.sources)
    fi
    if [ -z "$found" ] && [ -r /etc/apt/sources.list ]; then
        found=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' \
            /etc/apt/sources.list)
    fi
    [ -n "$found" ] || { echo "no Debian mirror in the apt sources" >&2; exit 2; }
    echo "$found"
}

mounted_under() {
    awk -v d="$1" '$2 == d || index($2, d "/") == 1 { found = 1 } END { exit !found }' /proc/mounts
}

build() {
    local suite=$1 target=$CACHE/$1 work=$CACHE/$1.new packages
    packages="kamailio,kamailio-tls-modules${EXTRA:+,$EXTRA}"
    if [ -d "$work" ]; then
        if mounted_under "$work"; then
            echo "refusing: something is mounted under $work" >&2
            exit 2
        fi
        rm -rf --one-file-system "$work"
    fi
    echo "building the $suite chroot in $target (about a minute)" >&2
    local policy='mkdir -p "$1/usr/sbin" && printf "#!/bin/sh\nexit 101\n" > "$1/usr/sbin/policy-rc.d" && chmod 755 "$1/usr/sbin/policy-rc.d"'
    if command -v mmdebstrap >/dev/null; then
        timeout "$TIMEOUT" mmdebstrap --quiet --variant=apt --mode=root \
            --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
            --aptopt='APT::Install-Recommends "false"' \
            --aptopt='Acquire::Check-Valid-Until "false"' \
            --setup-hook="$policy" \
            --include="$packages" \
            "$suite" "$work" "$(mirror)" >&2
    else
        timeout "$TIMEOUT" debootstrap --variant=minbase --include="$packages" \
            --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
            "$suite" "$work" "$(mirror)" >&2
    fi
    if mounted_under "$work"; then
        echo "mounts left under $work after the build" >&2
        exit 2
    fi
    [ -x "$work/usr/sbin/kamailio" ] || { echo "no kamailio in the $suite chroot" >&2; exit 2; }
    mv "$work" "$target"
}

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
for suite in "$@"; do
    [ -x "$CACHE/$suite/usr/sbin/kamailio" ] || build "$suite"
    echo "$suite $CACHE/$suite $(chroot "$CACHE/$suite" dpkg-query -W -f='${Version}' kamailio)"
done
