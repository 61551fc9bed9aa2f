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
