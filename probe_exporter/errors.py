"""The root of the exporter's own exceptions, so that callers can tell them from library errors.

Each layer defines its errors next to its code (binrpc.codec and binrpc.client, pool, sources);
all derive from ExporterError, and every wait that runs out of time raises a subclass of
ExporterTimeout, which is also a TimeoutError for callers that only care that time ran out.
"""

from __future__ import annotations

import errno
import os


class ExporterError(Exception):
    """Base class of every error the exporter raises itself (config, BINRPC, pool, HTTP sources)."""


class ExporterTimeout(ExporterError, TimeoutError):
    """A wait that ran out of time; the subclass says which wait."""


def describe_os_error(exc: BaseException) -> str:
    """An OS error as its errno name and the system's text, e.g. `ECONNREFUSED (Connection
    refused)`: asyncio and aiohttp put their own text, with addresses, in the message."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{errno.errorcode.get(exc.errno, exc.errno)} ({os.strerror(exc.errno)})"
    return str(exc) or type(exc).__name__
