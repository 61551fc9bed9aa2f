"""Reading a config file: regular files only, so that no read can block.

Opening a FIFO for reading waits for a writer, and reading a device may never end; a config
read that blocks would keep the exporter from exiting (and a reload from finishing). The file
is opened without blocking and checked to be a regular file before a byte is read.
"""

from __future__ import annotations

import errno
import os
import stat

__all__ = ["UnreadableFile", "read_regular_file"]

# What a path that is not a regular file is, in words.
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)
_REASONS = {
    errno.ENOENT: "no such file",
    errno.EACCES: "permission denied",
    errno.EISDIR: "not a regular file (a directory)",
    errno.ENOTDIR: "no such file (a parent is not a directory)",
    errno.ELOOP: "too many levels of symbolic links",
}


class UnreadableFile(ValueError):
    """The file cannot be read; the message is the reason alone ("no such file")."""


def read_regular_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a regular file (symbolic links followed), without ever blocking on a FIFO
    or a device."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise UnreadableFile(_reason(exc)) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _KINDS if test(mode)), "not a file")
            raise UnreadableFile(f"not a regular file ({kind})")
        with os.fdopen(fd, "rb", closefd=False) as file:
            return file.read()
    except OSError as exc:
        raise UnreadableFile(_reason(exc)) from None
    finally:
        os.close(fd)


def _reason(exc: OSError) -> str:
    if exc.errno in _REASONS:
        return _REASONS[exc.errno]
    return (exc.strerror or type(exc).__name__).lower()
