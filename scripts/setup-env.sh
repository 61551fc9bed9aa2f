# Shared set-up for the project's commands: a venv in .venv with the package installed.
# Sourced by scripts/run.sh, scripts/test.sh and scripts/bench.sh; EXTRAS selects the pip extras.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

apt_packages() {
    # Installs the Debian packages "$@" (as root, with apt-get; else says what is missing).
    # Their services are neither started nor enabled: Debian's kamailio and prometheus would
    # otherwise listen on all interfaces, now and after every boot. A policy-rc.d that answers
    # 101 ("action forbidden") stops the maintainer scripts from starting them (one already in
    # place, as in container images, is kept); then the units (systemd) or init scripts (sysv)
    # of the packages this install added are disabled.
    [ $# -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "missing: $* (install them with apt-get as root)" >&2
        return 0
    fi
    echo "installing Debian packages: $* (services not started nor enabled)" >&2
    local policy=${POLICY_RC_D:-/usr/sbin/policy-rc.d} own_policy="" status=0 before
    before=$(dpkg-query -W -f='${Package}\n' | sort)
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# Written for the length of one package install: start no service.\nexit 101\n' >"$policy"
        chmod 0755 "$policy"
        own_policy=1
        trap "rm -f '$policy'" EXIT
    fi
    apt-get -o DPkg::Lock::Timeout=600 update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@" >/dev/null ||
        status=$?
    if [ -n "$own_policy" ]; then
        rm -f "$policy"
        trap - EXIT
    fi
    local package file
    comm -13 <(printf '%s\n' "$before") <(dpkg-query -W -f='${Package}\n' | sort) |
        while read -r package; do
            dpkg-query -L "$package" 2>/dev/null | while read -r file; do
                case "$file" in
                    /lib/systemd/system/*.service | /usr/lib/systemd/system/*.service | \
                        /lib/systemd/system/*.socket | /usr/lib/systemd/system/*.socket | \
                        /lib/systemd/system/*.timer | /usr/lib/systemd/system/*.timer)
                        if command -v systemctl >/dev/null 2>&1; then
                            echo "disabling ${file##*/} (from $package)" >&2
                            systemctl disable --quiet "${file##*/}" 2>/dev/null || true
                        fi ;;
                    /etc/init.d/*)
                        if ! command -v systemctl >/dev/null 2>&1 && command -v update-rc.d >/dev/null 2>&1; then
                            echo "disabling ${file##*/} (from $package)" >&2
                            update-rc.d "${file##*/}" disable >/dev/null 2>&1 || true
                        fi ;;
                esac
            done
        done
    return "$status"
}

apt_install() {
    # Installs Debian packages for the binaries named in "$@" (pairs: binary=package) when missing.
    local missing=() pair
    for pair in "$@"; do
        command -v "${pair%%=*}" >/dev/null 2>&1 || missing+=("${pair#*=}")
    done
    apt_packages ${missing[@]+"${missing[@]}"}
}

if [ ! -x .venv/bin/python ]; then
    # Debian's python3 comes without venv (and ensurepip) until python3-venv is installed.
    python3 -m venv .venv || {
        rm -rf .venv
        apt_packages python3-venv
        python3 -m venv .venv
    }
fi
# The dependencies come pinned and hashed from the lock files (scripts/lock.sh), the project
# itself as an editable install. A stamp of what was installed skips all of it while pyproject.toml,
# the locks and the extras stay the same: then the exporter starts at once, without the package
# index. pip's output goes to a log, shown only when the install fails.
stamp=".venv/installed${EXTRAS:+-${EXTRAS//[^a-z]/}}"
wanted=$(cat pyproject.toml requirements.lock requirements-build.lock <(echo "${EXTRAS:-}") | sha256sum)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    # Extras come from the index (unpinned): only the exporter's own dependencies are locked.
    deps=--no-deps
    [ -n "${EXTRAS:-}" ] && deps=
    if ! { .venv/bin/python -m pip install -q --require-hashes --only-binary=:all: \
               -r requirements-build.lock -r requirements.lock &&
           .venv/bin/python -m pip install -q --no-build-isolation $deps -e ".${EXTRAS:-}"; } \
            >.venv/pip.log 2>&1; then
        cat .venv/pip.log >&2
        exit 1
    fi
    echo "$wanted" >"$stamp"
fi
