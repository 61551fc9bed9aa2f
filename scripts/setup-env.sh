# Shared set-up for the project's commands: a venv in .venv with the package installed.
# Sourced by scripts/run.sh, scripts/test.sh and scripts/bench.sh; EXTRAS selects the pip extras.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

apt_packages() {
    # Installs the Debian packages "$@" (as root, with apt-get; else says what is missing).
    [ $# -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "missing: $* (install them with apt-get as root)" >&2
        return 0
    fi
    echo "installing Debian packages: $*" >&2
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@" >/dev/null
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
# pip's output goes to a log, shown only when the install fails.
if ! { .venv/bin/python -m pip install -q --upgrade pip &&
       .venv/bin/python -m pip install -q -e ".${EXTRAS:-}"; } >.venv/pip.log 2>&1; then
    cat .venv/pip.log >&2
    exit 1
fi
