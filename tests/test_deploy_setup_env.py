"""scripts/setup-env.sh's apt helper installs packages without starting or enabling services.

A real install of packages with services is not something a test may do on a shared machine,
so apt-get, dpkg-query, systemctl, update-rc.d and id are stand-ins here that record what the
helper makes them see; everything else (bash, the helper's own code) is real. The stand-in
apt-get runs the policy-rc.d as Debian's maintainer scripts would (invoke-rc.d asks it before
starting a service) and records the answer.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

# bash runs the helper itself.
pytestmark = pytest.mark.real

ROOT = Path(__file__).resolve().parent.parent
SETUP_ENV = ROOT / "scripts" / "setup-env.sh"

APT_GET = """#!/bin/bash
case " $* " in
  *" install "*)
    if [ -x "$POLICY_RC_D" ]; then "$POLICY_RC_D" kamailio start; echo "policy $?" >>"$LOG"
    else echo "policy absent" >>"$LOG"; fi
    grep -qx kamailio "$DB" || echo kamailio >>"$DB" ;;
esac
"""
DPKG_QUERY = """#!/bin/bash
if [ "$1" = -W ]; then cat "$DB"; exit 0; fi
[ "$1" = -L ] && [ "$2" = kamailio ] && printf '%s\\n' /usr/sbin/kamailio \\
    /lib/systemd/system/kamailio.service /etc/init.d/kamailio /etc/kamailio/kamailio.cfg
"""
RECORDER = """#!/bin/bash
echo "$(basename "$0") $*" >>"$LOG"
"""


def run_helper(
    tmp_path: Path, *, systemd: bool, policy: str | None, installed: tuple[str, ...] = ()
) -> tuple[int, list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in [
        ("apt-get", APT_GET),
        ("dpkg-query", DPKG_QUERY),
        ("update-rc.d", RECORDER),
        ("id", "#!/bin/bash\necho 0\n"),
        *([("systemctl", RECORDER)] if systemd else []),
    ]:
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    for name in ("sort", "comm", "chmod", "rm", "cat", "basename", "grep"):
        real = shutil.which(name)
        assert real is not None
        (bin_dir / name).symlink_to(real)
    db, log, policy_path = tmp_path / "db", tmp_path / "log", tmp_path / "policy-rc.d"
    db.write_text("".join(f"{name}\n" for name in ("bash", "coreutils", *installed)))
    log.write_text("")
    if policy is not None:
        policy_path.write_text(policy)
        policy_path.chmod(0o755)
    helper = SETUP_ENV.read_text().split("apt_packages() {", 1)[1].split("\n}\n", 1)[0]
    script = f"set -euo pipefail\napt_packages() {{{helper}\n}}\napt_packages kamailio\n"
    bash = shutil.which("bash")
    assert bash is not None
    result = subprocess.run(
        [bash, "-c", script],
        env={"PATH": str(bin_dir), "DB": str(db), "LOG": str(log), "POLICY_RC_D": str(policy_path)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    if policy is None:
        assert not policy_path.exists(), "the helper's policy-rc.d outlived the install"
    else:
        assert policy_path.read_text() == policy, "an existing policy-rc.d was changed"
    return result.returncode, log.read_text().splitlines()


def test_no_service_starts_or_is_enabled_with_systemd(tmp_path: Path) -> None:
    _, log = run_helper(tmp_path, systemd=True, policy=None)
    assert log == ["policy 101", "systemctl disable --quiet kamailio.service"]


def test_without_systemd_the_init_script_is_disabled(tmp_path: Path) -> None:
    _, log = run_helper(tmp_path, systemd=False, policy=None)
    assert log == ["policy 101", "update-rc.d kamailio disable"]


def test_an_existing_policy_is_kept(tmp_path: Path) -> None:
    _, log = run_helper(tmp_path, systemd=True, policy="#!/bin/sh\nexit 101\n")
    assert log == ["policy 101", "systemctl disable --quiet kamailio.service"]


def test_packages_installed_before_are_left_alone(tmp_path: Path) -> None:
    """Only the services of packages this install added are disabled."""
    _, log = run_helper(tmp_path, systemd=True, policy=None, installed=("kamailio",))
    assert log == ["policy 101"]
