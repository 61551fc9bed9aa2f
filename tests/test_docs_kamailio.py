"""docs/kamailio.md: the ctl settings it gives, tried on a real Kamailio 5.6.

The unix-socket block of the doc is read from the file and put into the test Kamailio's config
(paths, user and group swapped for ones that exist here). A client running as another user, with
and without the socket's group, shows who may connect; that needs root (to start it as another
user), else only the socket's mode and group are checked.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import require_binary
from kamailio_harness import KamailioInstance, find_binary

# Starts its own Kamailio (not the harness fixtures) and kamcmd.
pytestmark = pytest.mark.real

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "kamailio.md"
DOC_SOCKET = "/run/kamailio/kamailio_ctl"
HARNESS_CTL_MODE = 'modparam("ctl", "mode", 0600)'
# A group every Debian system has, which the unprivileged client below does not have by default.
SOCKET_GROUP = "users"
CLIENT_USER = "nobody"


def documented_unix_block() -> list[str]:
    """The ctl lines of the doc's unix-socket example (the block that sets `mode`)."""
    blocks = re.findall(r"^```\w*\n(.*?)^```", DOC.read_text(), re.MULTILINE | re.DOTALL)
    (block,) = [b for b in blocks if 'modparam("ctl", "mode"' in b and '"user"' in b]
    return [line for line in block.splitlines() if line.startswith("modparam(")]


def ctl_settings(instance: KamailioInstance, lines: list[str]) -> str:
    """The doc's lines for this instance: its socket path, root as the user (Kamailio runs as
    root here) and SOCKET_GROUP as the group."""
    out = []
    for line in lines:
        line = line.replace(DOC_SOCKET, str(instance.unix_path))
        line = line.replace('"user", "kamailio"', '"user", "root"')
        line = line.replace('"group", "kamailio"', f'"group", "{SOCKET_GROUP}"')
        out.append(line)
    return "\n".join(out)


@pytest.fixture
def instance() -> Iterator[KamailioInstance]:
    require_binary("kamailio")
    # Not under pytest's 0700 tmp directory: another user must be able to reach the socket.
    workdir = Path(tempfile.mkdtemp(prefix="kamailio-docs-"))
    kamailio = KamailioInstance(workdir)
    for directory in (workdir, kamailio.rundir):
        directory.chmod(0o755)
    try:
        yield kamailio
    finally:
        kamailio.stop()
        subprocess.run(["rm", "-rf", str(workdir)], check=False, timeout=30)


def start_with(kamailio: KamailioInstance, ctl_lines: str) -> None:
    config = kamailio.config_path.read_text()
    assert HARNESS_CTL_MODE in config
    # The harness's own unix listener stays: only the socket settings change.
    kamailio.config_path.write_text(config.replace(HARNESS_CTL_MODE, ctl_lines))
    kamailio.start()


def socket_mode_and_group(path: Path) -> tuple[int, str]:
    info = path.stat()
    assert stat.S_ISSOCK(info.st_mode)
    return stat.S_IMODE(info.st_mode), grp.getgrgid(info.st_gid).gr_name


def kamcmd_as(user: str, groups: list[str], address: str) -> subprocess.CompletedProcess[str]:
    """`kamcmd -s ADDRESS core.version` as `user`, with exactly these supplementary groups."""
    if os.geteuid() != 0:
        pytest.skip("starting a client as another user needs root")
    kamcmd = find_binary("kamcmd")
    assert kamcmd is not None, "kamcmd comes with the kamailio package"
    account = pwd.getpwnam(user)
    return subprocess.run(
        [kamcmd, "-s", address, "core.version"],
        user=account.pw_uid,
        group=account.pw_gid,
        extra_groups=[grp.getgrnam(name).gr_gid for name in groups],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_doc_gives_mode_user_and_group() -> None:
    assert documented_unix_block() == [
        'modparam("ctl", "binrpc", "unix:/run/kamailio/kamailio_ctl")',
        'modparam("ctl", "mode", 0660)',
        'modparam("ctl", "user", "kamailio")',
        'modparam("ctl", "group", "kamailio")',
    ]


def test_documented_settings_let_the_group_in(instance: KamailioInstance) -> None:
    start_with(instance, ctl_settings(instance, documented_unix_block()))
    assert socket_mode_and_group(instance.unix_path) == (0o660, SOCKET_GROUP)
    allowed = kamcmd_as(CLIENT_USER, [SOCKET_GROUP], instance.unix)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "kamailio 5." in allowed.stdout
    refused = kamcmd_as(CLIENT_USER, [], instance.unix)
    assert refused.returncode != 0
    assert "Permission denied" in refused.stdout + refused.stderr


def test_default_mode_refuses_the_group(instance: KamailioInstance) -> None:
    """Kamailio's default mode 0600: being in the socket's group does not help."""
    lines = [line for line in documented_unix_block() if '"mode"' not in line]
    start_with(instance, ctl_settings(instance, lines))
    assert socket_mode_and_group(instance.unix_path) == (0o600, SOCKET_GROUP)
    refused = kamcmd_as(CLIENT_USER, [SOCKET_GROUP], instance.unix)
    assert refused.returncode != 0
    assert "Permission denied" in refused.stdout + refused.stderr


def test_group_alone_is_ignored(instance: KamailioInstance) -> None:
    """Kamailio 5.6 changes the owner only with both `user` and `group`, as the doc warns."""
    lines = [line for line in documented_unix_block() if '"user"' not in line]
    start_with(instance, ctl_settings(instance, lines))
    mode, group = socket_mode_and_group(instance.unix_path)
    assert mode == 0o660
    assert group == grp.getgrgid(os.getegid()).gr_name != SOCKET_GROUP


def test_setgid_directory_gives_the_group(instance: KamailioInstance) -> None:
    """The sidecar case: an fsGroup emptyDir is group-owned and set-group-ID, so mode 0660 alone
    lets every container of the pod in."""
    if os.geteuid() != 0:
        pytest.skip("giving the directory another group needs root")
    os.chown(instance.rundir, -1, grp.getgrnam(SOCKET_GROUP).gr_gid)
    instance.rundir.chmod(0o2775)
    start_with(instance, 'modparam("ctl", "mode", 0660)')
    assert socket_mode_and_group(instance.unix_path) == (0o660, SOCKET_GROUP)
    allowed = kamcmd_as(CLIENT_USER, [SOCKET_GROUP], instance.unix)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
