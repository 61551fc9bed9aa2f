"""The errors of the binrpc package, in a module of their own: the codec may be compiled
(mypyc), and a compiled exception class could neither be subclassed by the client's
interpreted ones nor share a base with TimeoutError. `codec` exports the codec's, `client` the
client's: one class per way a call fails, as httpcore has, so that the probe maps each to its
stage without reading messages."""

from __future__ import annotations

from ..errors import ExporterError, ExporterTimeout


class BinRpcError(ExporterError):
    """Root of every error of the binrpc package."""


class ProtocolError(BinRpcError):
    """Malformed, truncated or oversized input. The message names the problem and its offset."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


class LimitExceeded(ProtocolError):
    """Input beyond a limit set on its size; `size` is how much came (at least), `limit` the
    limit."""

    def __init__(self, message: str, size: int, limit: int, offset: int | None = None) -> None:
        super().__init__(message, offset)
        self.size = size
        self.limit = limit


class PacketTooLarge(LimitExceeded):
    """A packet's length field says more bytes than the reader takes."""


class TooManyRecords(LimitExceeded):
    """A body holds more records than the decoder was allowed to make into values."""


class Fault(BinRpcError):
    """A FAULT packet: Kamailio's answer to a failed RPC."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"fault {code}: {message}")
        self.code = code
        self.message = message


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
