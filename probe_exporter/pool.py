"""Pooled BINRPC connections: reuse across probes, an idle TTL, and bounded totals.

Kamailio serves every ctl client from one process and accepts at most 128 stream connections in
total, never closing idle ones itself. So the pool keeps few connections per target (default 1,
shared by concurrent probes, whose calls the connection serialises), closes connections left
unused for `idle_ttl`, and closes the least recently used one when `max_connections` is reached.

Connections to listed targets and to addresses that allow rules let in (ad hoc) are kept apart,
each kind with its own maximum (`max_connections`, `max_adhoc_connections`): however many
addresses are probed ad hoc, they only ever push out each other, never a listed target's
connection. Ad-hoc slots have negative indexes in the pool's keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cachetools import TTLCache

from .binrpc.address import Address
from .binrpc.client import Connection, connect
from .binrpc.codec import DEFAULT_MAX_PACKET_SIZE
from .errors import ExporterTimeout

log = logging.getLogger(__name__)

PoolKey = tuple[Address, int]
Connector = Callable[[Address, float], Awaitable[Connection]]


class PoolTimeout(ExporterTimeout):
    """Every connection slot of the target was still connecting when the wait ran out."""


@dataclass
class PoolStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0


@dataclass(frozen=True, slots=True)
class Lease:
    connection: Connection
    reused: bool


class _ConnectionCache(TTLCache[PoolKey, Connection]):
    """A TTLCache that hands every connection it drops to `on_drop`, with the reason: "idle"
    (expired) or "evicted" (least recently used, to make room), and its own maximum."""

    def __init__(
        self, maxsize: int, ttl: float, on_drop: Callable[[Connection, str, int], None]
    ) -> None:
        super().__init__(maxsize, ttl)
        self.limit = maxsize
        self._on_drop = on_drop

    def expire(self, time: Any = None) -> Any:
        expired = super().expire(time)
        for _, connection in expired:
            self._on_drop(connection, "idle", self.limit)
        return expired

    def popitem(self) -> tuple[PoolKey, Connection]:
        key, connection = super().popitem()
        self._on_drop(connection, "evicted", self.limit)
        return key, connection


class ConnectionPool:
    """Hands out pooled connections per target address; see the module docstring."""

    def __init__(
        self,
        *,
        idle_ttl: float,
        max_connections: int,
        per_target: int,
        max_adhoc_connections: int = 128,
        max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
        connector: Connector | None = None,
        stats: PoolStats | None = None,
    ) -> None:
        self.per_target = per_target
        self.stats = stats or PoolStats()  # a pool replacing another keeps counting on
        self._max_packet_size = max_packet_size
        self._connector = connector or self._connect
        self._cache = _ConnectionCache(max_connections, idle_ttl, self._dropped)
        self._adhoc = _ConnectionCache(max_adhoc_connections, idle_ttl, self._dropped)
        self._leases: dict[Connection, int] = {}
        self._connecting: dict[PoolKey, asyncio.Future[Connection]] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False
        self._retiring = False

    async def _connect(self, address: Address, timeout: float) -> Connection:
        return await connect(address, timeout=timeout, max_packet_size=self._max_packet_size)

    def __len__(self) -> int:
        return len(self._cache) + len(self._adhoc)

    def _cache_of(self, key: PoolKey) -> _ConnectionCache:
        return self._cache if key[1] >= 0 else self._adhoc

    def start(self) -> None:
        """Starts closing idle connections in the background, even while no probe runs."""
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep())

    async def _sweep(self) -> None:
        interval = min(max(self._cache.ttl / 4, 0.05), 5.0)
        while True:
            await asyncio.sleep(interval)
            self._cache.expire()
            self._adhoc.expire()

    def lease(self, address: Address, *, timeout: float, listed: bool = True) -> Leasing:
        """`async with pool.lease(...) as lease`: a usable connection to `address`; connecting
        takes at most `timeout` seconds. `listed` says whether it is a listed target's or an
        ad-hoc address's (see above).

        A connection that breaks while leased is dropped from the pool on release.
        """
        return Leasing(self, address, timeout, 1 if listed else -1)

    async def _acquire(self, address: Address, timeout: float, sign: int) -> tuple[PoolKey, Lease]:
        """`sign` is 1 for a listed target's slots (0, 1...), -1 for ad-hoc ones (-1, -2...)."""
        # No expire() here: get() takes an expired connection for none, and storing one (a
        # new connection, or a release restarting the idle TTL) expires the others first.
        cache = self._cache if sign > 0 else self._adhoc
        slots = [(address, index if sign > 0 else -1 - index) for index in range(self.per_target)]
        shared: tuple[PoolKey, Connection] | None = None
        free_slot: PoolKey | None = None
        for key in slots:
            connection = cache.get(key)
            if connection is not None and connection.usable:
                if not self._leases.get(connection):
                    self.stats.hits += 1
                    return key, Lease(connection, reused=True)
                if shared is None or self._leases[connection] < self._leases[shared[1]]:
                    shared = (key, connection)
            elif connection is not None:
                self._forget(key, connection)
                free_slot = free_slot or key
            elif key in self._connecting:
                continue
            else:
                free_slot = free_slot or key
        if free_slot is not None:
            self.stats.misses += 1
            return free_slot, Lease(await self._open(free_slot, timeout), reused=False)
        if shared is not None:
            self.stats.hits += 1
            return shared[0], Lease(shared[1], reused=True)
        # Every slot is still connecting: wait for one of them rather than exceed the limit.
        # (asyncio.wait neither cancels nor consumes the futures it watches.)
        loop = asyncio.get_running_loop()
        started = loop.time()
        pending = [self._connecting[key] for key in slots]
        done, _ = await asyncio.wait(pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if not done:
            raise PoolTimeout(f"timed out waiting for a connection to {address}")
        return await self._acquire(address, max(timeout - (loop.time() - started), 0.001), sign)

    async def _open(self, key: PoolKey, timeout: float) -> Connection:
        future: asyncio.Future[Connection] = asyncio.get_running_loop().create_future()
        self._connecting[key] = future
        try:
            connection = await self._connector(key[0], timeout)
        except BaseException as exc:
            if isinstance(exc, Exception):
                future.set_exception(exc)
                future.exception()  # retrieved here: waiters only need to know it finished
            else:
                future.cancel()
            raise
        finally:
            del self._connecting[key]
        future.set_result(connection)
        self._cache_of(key)[key] = connection
        return connection

    def _release(self, key: PoolKey, connection: Connection) -> None:
        remaining = self._leases[connection] - 1
        if remaining:
            self._leases[connection] = remaining
        else:
            del self._leases[connection]
        cache = self._cache_of(key)
        if not connection.usable or (self._retiring and not remaining):
            self._forget(key, connection)
        elif cache.get(key) is connection:
            cache[key] = connection  # re-inserting restarts the idle TTL
        elif not remaining:
            self._close_later(connection)  # evicted while leased

    def _leased(self, connection: Connection) -> None:
        self._leases[connection] = self._leases.get(connection, 0) + 1

    def retire(self) -> None:
        """Closes idle connections now and leased ones when their last lease ends: a pool that
        a new config replaced must not hold connections that Kamailio counts against its 128."""
        self._retiring = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for key, connection in [*self._cache.items(), *self._adhoc.items()]:
            if not self._leases.get(connection):
                self._forget(key, connection)

    def _forget(self, key: PoolKey, connection: Connection) -> None:
        cache = self._cache_of(key)
        if cache.get(key) is connection:
            del cache[key]
        self._close_later(connection)

    def _dropped(self, connection: Connection, reason: str, limit: int) -> None:
        if not self._closed:
            self.stats.evictions += 1
            if reason == "idle":
                log.debug(
                    "closing the connection to %s: unused for %gs",
                    connection.address,
                    self._cache.ttl,
                )
            else:
                log.debug(
                    "closing the connection to %s: least recently used, at the limit of %d",
                    connection.address,
                    limit,
                )
        if not self._leases.get(connection):
            self._close_later(connection)

    def _close_later(self, connection: Connection) -> None:
        task = asyncio.get_running_loop().create_task(connection.close())
        self._closing.add(task)
        task.add_done_callback(functools.partial(self._closed_one, connection))

    def _closed_one(self, connection: Connection, task: asyncio.Task[None]) -> None:
        self._closing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug(
                "closing the connection to %s failed: %r", connection.address, task.exception()
            )

    async def close(self) -> None:
        """Closes every pooled connection and stops the sweeper."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        self._closed = True
        for cache in (self._cache, self._adhoc):
            cache.expire()
            while cache:
                cache.popitem()  # hands the connection to _dropped, which closes it
        await asyncio.gather(*self._closing, return_exceptions=True)


class Leasing:
    """The context manager ConnectionPool.lease returns: a class, not an async generator, since
    every probe enters one, and a generator costs more."""

    def __init__(self, pool: ConnectionPool, address: Address, timeout: float, sign: int) -> None:
        self._pool = pool
        self._address = address
        self._timeout = timeout
        self._sign = sign
        self._held: tuple[PoolKey, Connection] | None = None

    async def __aenter__(self) -> Lease:
        pool = self._pool
        key, lease = await pool._acquire(self._address, self._timeout, self._sign)
        pool._leased(lease.connection)
        self._held = (key, lease.connection)
        return lease

    async def __aexit__(self, *exc_info: object) -> None:
        if self._held is not None:
            self._pool._release(*self._held)
