"""The client's exceptions, one class per way a call fails, as httpcore has: the probe maps each
to its stage without reading messages. The codec's (BinRpcError, ProtocolError, Fault,
LimitExceeded) are their bases."""

from __future__ import annotations

from ..errors import ExporterTimeout
from .codec import BinRpcError, LimitExceeded, ProtocolError


class ConnectError(BinRpcError):
    """Could not connect: refused, no socket file, name not resolved, connect timeout."""


class ConnectTimeout(ConnectError, ExporterTimeout):
    """Connecting took longer than its timeout."""


class ConnectionLost(BinRpcError):
    """The connection closed or broke during a call, or was already unusable."""


class BusyTimeout(BinRpcError, ExporterTimeout):
    """Other callers' batches held the connection until the deadline; it stays usable."""


class ReplyTimeout(BinRpcError, ExporterTimeout):
    """The replies of a batch did not all come before the deadline; the connection is closed."""


class RepliesTooLarge(LimitExceeded):
    """The replies of a batch came to more bytes than the batch may receive."""


class CookieMismatch(ProtocolError):
    """A reply carried another cookie than the request it answers."""


class NotBinRpc(ProtocolError):
    """The peer's first bytes are not BINRPC: another service listens at the address."""
