"""What the client says when a peer is not Kamailio's ctl or its socket refuses the exporter:
the words an operator needs to fix it (who the exporter runs as, who owns the socket, which ctl
modparams change that; what answered instead of BINRPC)."""

from __future__ import annotations

import grp
import os
import pwd
import stat
from pathlib import Path

from .codec import MAGIC

# The first bytes of other services' answers, and what answers so.
_FOREIGN_PROTOCOLS = (
    (b"HTTP/", "an HTTP server"),
    (b"SIP/", "a SIP server"),
    (b"SSH-", "an SSH server"),
    (b"\x15\x03", "a TLS server"),
    (b"\x16\x03", "a TLS server"),
)
SHOWN_BYTES = 64  # of a foreign answer, in error messages


def foreign_answer(head: bytes) -> str:
    """Says what answered instead of Kamailio's ctl, quoting its first bytes (escaped)."""
    what = next((name for prefix, name in _FOREIGN_PROTOCOLS if head.startswith(prefix)), None)
    shown = head[:SHOWN_BYTES]
    if what is not None and what != "a TLS server":
        shown = shown.split(b"\r", 1)[0].split(b"\n", 1)[0]
    quoted = repr(shown)[1:] + ("..." if len(shown) < len(head) else "")
    if what is None:
        return f"answered {quoted}, not BINRPC (magic byte 0x{head[0]:02X}, not 0x{MAGIC:02X})"
    return f"answered like {what} ({quoted})"


def permission_hint(path: str) -> str:
    """Who the exporter runs as, who may use the socket, and how ctl changes that."""
    uid, gids = os.geteuid(), sorted({os.getegid(), *os.getgroups()})
    runs_as = f"the exporter runs as uid {_user(uid)}, gids {', '.join(map(_group, gids))}"
    try:
        info = os.stat(path)
    except PermissionError:
        closed = next(
            (d for d in reversed(Path(path).parents) if not os.access(d, os.X_OK)),
            Path(path).parent,
        )
        return (
            f"{runs_as}, and may not enter {closed} ({_owner_and_mode(os.stat(closed))}):"
            " every directory on the socket's path must be searchable (see docs/kamailio.md)"
        )
    except OSError:
        return runs_as
    if info.st_gid in gids:
        fix = 'let its group write: modparam("ctl", "mode", 0660)'
    else:
        fix = (
            'give it a group of the exporter\'s (modparam("ctl", "user", ...) and'
            ' modparam("ctl", "group", ...), both) or the exporter its group, and let the'
            ' group write: modparam("ctl", "mode", 0660)'
        )
    return f"{runs_as}; the socket is {_owner_and_mode(info)}: {fix} (see docs/kamailio.md)"


def _owner_and_mode(info: os.stat_result) -> str:
    mode = stat.S_IMODE(info.st_mode)
    return (
        f"owned by uid {_user(info.st_uid)}, gid {_group(info.st_gid)},"
        f" mode {mode:04o} ({stat.filemode(info.st_mode)})"
    )


def _user(uid: int) -> str:
    try:
        return f"{uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    try:
        return f"{gid} ({grp.getgrgid(gid).gr_name})"
    except KeyError:
        return str(gid)
