"""The HTTP server's set-up: listeners (addresses or systemd's sockets), a route prefix, and the
limits that keep clients from exhausting the exporter (Slowloris and connection floods).

aiohttp closes idle keep-alive connections (`keepalive_timeout`) but has no deadline for a
request head and no cap on connections. Both live here, in a thin protocol wrapped around each
aiohttp RequestHandler, so that aiohttp itself is used unchanged:

- a client must send a whole request head within `read_header_timeout` of connecting, or of
  the first byte after an idle keep-alive pause;
- at most `max_connections` client connections are open. When a new one would exceed the cap,
  the connection that has waited longest without a request in progress (idle, or still sending
  its head) is closed to make room: held connections cannot lock out a scraper, which needs
  only milliseconds to send its request. If every connection is busy with a request, the new
  one is closed at once.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import resource
import socket
import ssl
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger("probe_exporter")

# Descriptors the process needs besides client connections, pooled BINRPC connections and
# merged-source connections: stdio, listeners, the event loop's own, config and DNS reads.
FD_HEADROOM = 64
# The automatic client connection cap: what the descriptor limit leaves, within these bounds.
AUTO_MAX_CONNECTIONS = 1024
MIN_MAX_CONNECTIONS = 32
SD_LISTEN_FDS_START = 3  # sd_listen_fds(3): the first socket systemd passes


@dataclass(frozen=True)
class HttpLimits:
    read_header_timeout: float
    idle_timeout: float
    max_connections: int


# -- descriptors -------------------------------------------------------------------------------


def raise_nofile_limit() -> int:
    """Raises the soft RLIMIT_NOFILE to the hard limit, as Go does at start; returns the
    (possibly raised) soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open file limit from %d to %d: %s", soft, hard, exc)
    return soft


def size_http_connections(requested: int, nofile: int, pool: int, sources: int) -> int:
    """The client connection cap: `requested`, or when 0 what the descriptor limit leaves for
    clients after the pool, merged sources and headroom. Warns, naming the numbers, when the
    total cannot fit."""
    if nofile == resource.RLIM_INFINITY:
        return requested or AUTO_MAX_CONNECTIONS
    left = nofile - pool - sources - FD_HEADROOM
    chosen = requested or max(MIN_MAX_CONNECTIONS, min(AUTO_MAX_CONNECTIONS, left))
    if chosen > left:
        log.warning(
            "the open file limit %d cannot hold %d HTTP client connections + %d pooled "
            "BINRPC connections + %d merged-source connections + %d spare: raise the limit "
            "(LimitNOFILE= in systemd, ulimit -n) or lower --web.max-connections and "
            "--pool.max-connections; when descriptors run out, probes fail at stage connect",
            nofile,
            chosen,
            pool,
            sources,
            FD_HEADROOM,
        )
    return chosen


# -- listeners ---------------------------------------------------------------------------------


class SystemdSocketError(Exception):
    """--web.systemd-socket without usable sockets from systemd."""


def systemd_sockets() -> list[socket.socket]:
    """The listening stream sockets systemd passed (LISTEN_FDS, LISTEN_PID; sd_listen_fds(3)).
    The variables are removed so that no child process takes them for its own."""
    pid, count = os.environ.pop("LISTEN_PID", ""), os.environ.pop("LISTEN_FDS", "")
    os.environ.pop("LISTEN_FDNAMES", None)
    if pid != str(os.getpid()):
        raise SystemdSocketError(
            f"no sockets from systemd: LISTEN_PID is {pid or 'not set'}, not this process "
            f"({os.getpid()}); start it from a .socket unit"
        )
    if not count.isdigit() or int(count) < 1:
        raise SystemdSocketError(f"no sockets from systemd: LISTEN_FDS is {count or 'not set'}")
    sockets = []
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + int(count)):
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            raise SystemdSocketError(f"descriptor {fd} from systemd is not a socket")
        sock = socket.socket(fileno=fd)
        if sock.type != socket.SOCK_STREAM:
            raise SystemdSocketError(
                f"descriptor {fd} from systemd is not a stream socket: use ListenStream="
            )
        os.set_inheritable(fd, False)
        sockets.append(sock)
    return sockets


def socket_name(sock: socket.socket) -> str:
    address = sock.getsockname()
    if sock.family == socket.AF_INET6:
        return f"[{address[0]}]:{address[1]}"
    if sock.family == socket.AF_INET:
        return f"{address[0]}:{address[1]}"
    return str(address)


class GuardedSite(web.BaseSite):
    """A listener (an address or a ready socket) whose connections pass the guard."""

    def __init__(
        self,
        runner: web.BaseRunner,
        guard: ConnectionGuard,
        *,
        host: str | None = None,
        port: int | None = None,
        sock: socket.socket | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._guard = guard
        self._host, self._port, self._sock = host, port, sock

    @property
    def name(self) -> str:
        return socket_name(self._sock) if self._sock else f"{self._host or ''}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        tls: dict[str, Any] = {}
        if self._ssl_context is not None:
            # A TLS handshake holds a descriptor before any HTTP byte: bound it like a head.
            tls = {"ssl": self._ssl_context, "ssl_handshake_timeout": self._guard.handshake_timeout}
        factory = self._guard.protocol_factory(server)
        if self._sock is not None:
            self._server = await loop.create_server(factory, sock=self._sock, **tls)
        else:
            self._server = await loop.create_server(factory, self._host, self._port, **tls)


# -- connection limits -------------------------------------------------------------------------


class _Connection(asyncio.Protocol):
    """One client connection: forwards everything to aiohttp's handler, and tells the guard
    when a request head is awaited."""

    def __init__(self, guard: ConnectionGuard, handler: RequestHandler) -> None:
        self.guard = guard
        self.handler = handler
        self.transport: asyncio.Transport | None = None
        self.head_deadline: asyncio.TimerHandle | None = None
        self.busy = False  # a request is being handled
        self.open = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if not self.guard.admit(self):
            transport.abort()
            return
        self.open = True
        self.handler.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self.open:
            return
        if not self.busy and self.head_deadline is None:
            self.guard.await_head(self)  # the first byte after an idle pause
        self.handler.data_received(data)

    def eof_received(self) -> None:
        if self.open:
            self.handler.eof_received()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self.open:
            self.open = False
            self.guard.forget(self)
            self.handler.connection_lost(exc)

    def pause_writing(self) -> None:
        self.handler.pause_writing()

    def resume_writing(self) -> None:
        self.handler.resume_writing()

    def close(self, abort: bool) -> None:
        if self.transport is not None and not self.transport.is_closing():
            if abort:
                self.transport.abort()
            else:
                self.transport.close()


class ConnectionGuard:
    """Enforces HttpLimits on client connections; see the module docstring."""

    def __init__(self, limits: HttpLimits) -> None:
        self.limits = limits
        self.handshake_timeout = limits.read_header_timeout
        # Connections without a request in progress, longest waiting first: the ones to close
        # when the cap is reached.
        self._waiting: collections.OrderedDict[_Connection, None] = collections.OrderedDict()
        self._busy: set[_Connection] = set()
        self._by_handler: dict[RequestHandler, _Connection] = {}
        self.refused = 0
        self.evicted = 0
        self.head_timeouts = 0

    @property
    def open_connections(self) -> int:
        return len(self._waiting) + len(self._busy)

    def protocol_factory(self, server: web.Server) -> Callable[[], asyncio.Protocol]:
        return lambda: _Connection(self, server())

    def admit(self, connection: _Connection) -> bool:
        if self.open_connections >= self.limits.max_connections:
            if not self._waiting:
                self.refused += 1
                return False
            oldest, _ = self._waiting.popitem(last=False)
            self._drop(oldest)
            self.evicted += 1
            # An idle keep-alive connection may still be sending its last answer: close, not
            # abort. A head half sent is dropped at once.
            oldest.close(abort=oldest.head_deadline is not None)
        self._waiting[connection] = None
        self._by_handler[connection.handler] = connection
        self.await_head(connection)
        return True

    def await_head(self, connection: _Connection) -> None:
        loop = asyncio.get_running_loop()
        connection.head_deadline = loop.call_later(
            self.limits.read_header_timeout, self._head_timeout, connection
        )
        self._waiting.move_to_end(connection)

    def _head_timeout(self, connection: _Connection) -> None:
        connection.head_deadline = None
        if connection.open and not connection.busy:
            self.head_timeouts += 1
            connection.close(abort=True)

    def forget(self, connection: _Connection) -> None:
        self._drop(connection)
        self._waiting.pop(connection, None)

    def _drop(self, connection: _Connection) -> None:
        if connection.head_deadline is not None:
            connection.head_deadline.cancel()
            connection.head_deadline = None
        self._busy.discard(connection)
        self._by_handler.pop(connection.handler, None)

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Marks the connection busy while its request is handled (its head has arrived)."""
        connection = self._by_handler.get(request.protocol)
        if connection is None or not connection.open:
            return await handler(request)
        if connection.head_deadline is not None:
            connection.head_deadline.cancel()
            connection.head_deadline = None
        self._waiting.pop(connection, None)
        self._busy.add(connection)
        connection.busy = True
        try:
            return await handler(request)
        finally:
            connection.busy = False
            if connection.open:
                self._busy.discard(connection)
                self._waiting[connection] = None


# -- the application under a prefix --------------------------------------------------------------


def mount(
    app: web.Application,
    route_prefix: str,
    middlewares: tuple[Callable[..., Awaitable[web.StreamResponse]], ...],
) -> web.Application:
    """The application to serve: `app` itself, or `app` under `route_prefix` (a sub-app, so its
    routes and relative links stay as they are) with `/` and the bare prefix redirecting to
    the prefix's `/`. `middlewares` run before the app's own."""
    if route_prefix == "/":
        app.middlewares[:0] = middlewares  # outermost: the app is not frozen yet
        return app
    root = web.Application(middlewares=middlewares)
    home = route_prefix + "/"

    async def to_home(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(home)

    root.router.add_get("/", to_home)
    root.router.add_get(route_prefix, to_home)
    root.add_subapp(route_prefix, app)
    return root
