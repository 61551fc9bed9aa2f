"""The pool's reuse, limits and expiry, with stand-in connections that count what happens to them
(how connections behave against a real Kamailio is tested in test_client.py and test_service.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from probe_exporter.binrpc.address import Address, parse_address
from probe_exporter.pool import ConnectionPool


class StandInConnection:
    def __init__(self, address: Address) -> None:
        self.address = address
        self.usable = True
        self.closed = False

    async def close(self) -> None:
        self.usable = False
        self.closed = True


class Connector:
    def __init__(self, delay: float = 0.0, fail: Exception | None = None) -> None:
        self.opened: list[StandInConnection] = []
        self.delay = delay
        self.fail = fail

    async def __call__(self, address: Address, timeout: float) -> Any:
        await asyncio.sleep(self.delay)
        if self.fail:
            raise self.fail
        connection = StandInConnection(address)
        self.opened.append(connection)
        return connection


def stand_in(connection: object) -> StandInConnection:
    """A leased connection as the stand-in the Connector made (the pool types it as Connection)."""
    assert isinstance(connection, StandInConnection)
    return connection


A = parse_address("tcp:127.0.0.1:2046")
B = parse_address("tcp:127.0.0.1:2047")


def make_pool(connector: Connector, **settings: Any) -> ConnectionPool:
    options: dict[str, Any] = {"idle_ttl": 60.0, "max_connections": 10, "per_target": 1}
    options.update(settings)
    return ConnectionPool(connector=connector, **options)


async def test_reuses_the_connection_of_a_target() -> None:
    connector = Connector()
    pool = make_pool(connector)
    async with pool.lease(A, timeout=1) as first:
        assert not first.reused
    async with pool.lease(A, timeout=1) as second:
        assert second.reused
        assert second.connection is first.connection
    assert (pool.stats.hits, pool.stats.misses, len(pool)) == (1, 1, 1)
    await pool.close()
    assert connector.opened[0].closed


async def test_concurrent_leases_share_one_connection_at_per_target_1() -> None:
    connector = Connector(delay=0.01)
    pool = make_pool(connector)
    seen: list[Any] = []

    async def probe() -> None:
        async with pool.lease(A, timeout=1) as lease:
            seen.append(lease.connection)
            await asyncio.sleep(0.005)

    await asyncio.gather(*(probe() for _ in range(20)))
    assert len(connector.opened) == 1
    assert all(c is connector.opened[0] for c in seen)
    await pool.close()


async def test_per_target_limit_opens_at_most_that_many() -> None:
    connector = Connector(delay=0.01)
    pool = make_pool(connector, per_target=3)

    async def probe() -> None:
        async with pool.lease(A, timeout=1):
            await asyncio.sleep(0.01)

    await asyncio.gather(*(probe() for _ in range(30)))
    assert len(connector.opened) == 3
    await pool.close()


async def test_a_broken_connection_is_replaced_and_closed() -> None:
    connector = Connector()
    pool = make_pool(connector)
    async with pool.lease(A, timeout=1) as lease:
        stand_in(lease.connection).usable = False  # e.g. EOF during the call
    await asyncio.sleep(0)
    assert connector.opened[0].closed
    async with pool.lease(A, timeout=1) as lease:
        assert not lease.reused
        assert stand_in(lease.connection) is connector.opened[1]
    await pool.close()


async def test_idle_connections_expire_and_close(caplog: pytest.LogCaptureFixture) -> None:
    connector = Connector()
    pool = make_pool(connector, idle_ttl=0.05)
    pool.start()
    with caplog.at_level(logging.DEBUG, logger="probe_exporter.pool"):
        async with pool.lease(A, timeout=1):
            pass
        await asyncio.sleep(0.2)  # the sweeper closes it without any further probe
    assert connector.opened[0].closed
    assert len(pool) == 0
    assert pool.stats.evictions == 1
    assert caplog.messages == [f"closing the connection to {A}: unused for 0.05s"]
    await pool.close()


async def test_a_failed_close_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    connector = Connector()
    pool = make_pool(connector, idle_ttl=60.0)
    async with pool.lease(A, timeout=1) as lease:
        pass

    async def refuse_to_close() -> None:
        raise OSError("EBADF")

    lease.connection.close = refuse_to_close  # type: ignore[method-assign]  # a close that fails
    with caplog.at_level(logging.DEBUG, logger="probe_exporter.pool"):
        await pool.close()
    assert caplog.messages == [f"closing the connection to {A} failed: OSError('EBADF')"]


async def test_use_restarts_the_idle_ttl() -> None:
    connector = Connector()
    pool = make_pool(connector, idle_ttl=0.15)
    for _ in range(5):
        async with pool.lease(A, timeout=1):
            pass
        await asyncio.sleep(0.05)
    assert len(connector.opened) == 1
    assert not connector.opened[0].closed
    await pool.close()


async def test_the_least_recently_used_connection_makes_room(
    caplog: pytest.LogCaptureFixture,
) -> None:
    connector = Connector()
    pool = make_pool(connector, max_connections=1)
    with caplog.at_level(logging.DEBUG, logger="probe_exporter.pool"):
        async with pool.lease(A, timeout=1):
            pass
        async with pool.lease(B, timeout=1):
            pass
        await asyncio.sleep(0)
    assert caplog.messages == [
        f"closing the connection to {A}: least recently used, at the limit of 1"
    ]
    assert connector.opened[0].closed
    assert not connector.opened[1].closed
    assert len(pool) == 1
    await pool.close()


async def test_a_connection_evicted_while_leased_closes_on_release() -> None:
    connector = Connector()
    pool = make_pool(connector, max_connections=1)
    async with pool.lease(A, timeout=1) as held:
        async with pool.lease(B, timeout=1):
            pass
        await asyncio.sleep(0)
        assert not stand_in(held.connection).closed  # still in use by this probe
    await asyncio.sleep(0)
    assert stand_in(held.connection).closed
    await pool.close()


async def test_connect_errors_propagate_and_leave_no_slot_taken() -> None:
    connector = Connector(fail=ConnectionRefusedError("refused"))
    pool = make_pool(connector)
    with pytest.raises(ConnectionRefusedError):
        async with pool.lease(A, timeout=1):
            pass
    connector.fail = None
    async with pool.lease(A, timeout=1) as lease:
        assert not lease.reused
    await pool.close()
