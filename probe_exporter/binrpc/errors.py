"""The errors of the binrpc package, in a module of their own: the codec may be compiled
(mypyc), and a compiled exception class could neither be subclassed by the client's
interpreted ones nor share a base with TimeoutError. `codec` exports them too."""

from __future__ import annotations

from ..errors import ExporterError


class BinRpcError(ExporterError):
    """Root of every error of the binrpc package."""


class ProtocolError(BinRpcError):
    """Malformed, truncated or oversized input. The message names the problem and its offset."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


class Fault(BinRpcError):
    """A FAULT packet: Kamailio's answer to a failed RPC."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"fault {code}: {message}")
        self.code = code
        self.message = message
