"""The asyncio BINRPC client against a real Kamailio (tests/kamailio_harness.py).

Small local fake servers stand in only for what Kamailio cannot be made to do: never answer,
answer with a wrong cookie.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Sequence

import pytest
from kamailio_harness import KamailioInstance, Sipp, free_ports

from probe_exporter.binrpc.address import Address, parse_address
from probe_exporter.binrpc.client import (
    ConnectError,
    Connection,
    ConnectionLost,
    CookieMismatch,
    DatagramConnection,
    StreamConnection,
    connect,
)
from probe_exporter.binrpc.codec import (
    Fault,
    PacketReader,
    ProtocolError,
    Struct,
    Value,
    encode_reply,
)

TRANSPORTS = ["tcp", "unix", "udp", "unixd"]
# Every test is bounded; these are generous for a loaded machine and still far below a hang.
TIMEOUT = 5.0


async def open_connection(kamailio: KamailioInstance, transport: str) -> Connection:
    return await connect(parse_address(getattr(kamailio, transport)), timeout=TIMEOUT)


@contextlib.asynccontextmanager
async def connection_to(kamailio: KamailioInstance, transport: str) -> AsyncIterator[Connection]:
    connection = await open_connection(kamailio, transport)
    try:
        yield connection
    finally:
        await connection.close()


def stats_of(reply: Sequence[Value]) -> dict[str, Value]:
    (stats,) = reply
    assert isinstance(stats, Struct)
    return stats.as_dict()


# --------------------------------------------------------------------------------------------
# Real Kamailio


@pytest.mark.kamailio
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_every_transport_answers_uptime_and_stats(
    kamailio: KamailioInstance, transport: str
) -> None:
    async with connection_to(kamailio, transport) as connection:
        assert isinstance(connection, StreamConnection if transport in ("tcp", "unix") else
                          DatagramConnection)  # fmt: skip
        (uptime,) = await connection.call("core.uptime")
        assert isinstance(uptime, Struct)
        assert isinstance(uptime.get("uptime"), int)
        assert isinstance(uptime.get("up_since"), str)

        stats = stats_of(await connection.call("stats.fetch", "all"))
        assert len(stats) > 100
        assert int(str(stats["core.rcv_requests"])) >= 0
        assert "script.my_custom_value_total" in stats
        assert "shmem.free_size" in stats
        assert connection.usable


@pytest.mark.kamailio
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_fault_is_returned_and_the_connection_stays_usable(
    kamailio: KamailioInstance, transport: str
) -> None:
    async with connection_to(kamailio, transport) as connection:
        with pytest.raises(Fault) as raised:
            await connection.call("no.such.method")
        assert raised.value.code == 500
        assert raised.value.message == "command no.such.method not found"
        assert connection.usable

        replies = await connection.call_many(
            [("no.such.method", ()), ("core.echo", ("after", 7)), ("stats.fetch", (42,))]
        )
        assert isinstance(replies[0], Fault)
        assert replies[1] == ["after", "7"]  # core.echo reads every parameter as a string
        assert isinstance(replies[2], Fault)
        assert replies[2].code == 400
        assert connection.usable
        assert await connection.call("core.echo", "still", "here") == ["still", "here"]


@pytest.mark.kamailio
@pytest.mark.parametrize("transport", ["tcp", "unix"])
async def test_fifty_pipelined_calls_in_one_batch(
    kamailio: KamailioInstance, transport: str
) -> None:
    calls: list[tuple[str, tuple[int | str, ...]]] = []
    for index in range(50):
        if index % 10 == 3:
            calls.append(("no.such.method", ()))
        elif index % 10 == 7:
            calls.append(("stats.fetch", ("all",)))
        else:
            calls.append(("core.echo", (index, f"call-{index}")))
    arrivals: list[float] = []
    async with connection_to(kamailio, transport) as connection:
        replies = await connection.call_many(calls, arrivals=arrivals)
        assert connection.usable
    assert len(replies) == len(arrivals) == 50
    assert arrivals == sorted(arrivals)
    for index, reply in enumerate(replies):
        if index % 10 == 3:
            assert isinstance(reply, Fault)
        elif index % 10 == 7:
            assert isinstance(reply, list)
            assert "core.rcv_requests" in stats_of(reply)
        else:
            assert reply == [str(index), f"call-{index}"]


@pytest.mark.kamailio
@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_twenty_concurrent_callers_share_one_connection(
    kamailio: KamailioInstance, transport: str
) -> None:
    async with connection_to(kamailio, transport) as connection:

        async def caller(number: int) -> None:
            for round_ in range(5):
                if number % 4 == 0:
                    replies = await connection.call_many(
                        [("core.echo", (number, round_)), ("core.uptime", ())]
                    )
                    assert replies[0] == [str(number), str(round_)]
                    assert isinstance(replies[1], list)
                else:
                    assert await connection.call("core.echo", f"caller {number}", round_) == [
                        f"caller {number}",
                        str(round_),
                    ]

        async with asyncio.timeout(TIMEOUT * 2):
            await asyncio.gather(*(caller(number) for number in range(20)))
        assert connection.usable


@pytest.mark.kamailio
async def test_reply_larger_than_max_packet_size_breaks_the_connection(
    kamailio: KamailioInstance,
) -> None:
    connection = await connect(parse_address(kamailio.tcp), timeout=TIMEOUT, max_packet_size=512)
    try:
        assert await connection.call("core.echo", "small") == ["small"]
        with pytest.raises(ProtocolError, match="exceeds the limit of 512 bytes"):
            await connection.call("stats.fetch", "all")
        assert not connection.usable
        with pytest.raises(ConnectionLost, match="unusable"):
            await connection.call("core.uptime")
    finally:
        await connection.close()


@pytest.mark.kamailio
async def test_counters_follow_sip_traffic(kamailio: KamailioInstance, sipp: Sipp) -> None:
    async with connection_to(kamailio, "tcp") as connection:

        async def custom_counter() -> int:
            (value,) = await connection.call("stats.fetch", "script.my_custom_value_total")
            assert isinstance(value, Struct)
            return int(str(value.get("script.my_custom_value_total")))

        async def processed_dialogs() -> int:
            (value,) = await connection.call("stats.fetch", "dialog:")
            assert isinstance(value, Struct)
            return int(str(value.get("dialog.processed_dialogs")))

        counted, dialogs = await custom_counter(), await processed_dialogs()
        assert sipp.register(5).successful == 5
        assert sipp.busy(3).successful == 3
        # The script counts every request it routes: 5 REGISTERs, 3 INVITEs and their 3 ACKs.
        assert await custom_counter() - counted >= 11
        assert sipp.calls(2).successful == 2
        # The 486s are dialogs too (dlg_manage runs before the busy check).
        assert await processed_dialogs() - dialogs == 5


@pytest.mark.kamailio
async def test_restart_under_open_connections(
    kamailio_factory: Callable[[], KamailioInstance],
) -> None:
    kamailio = kamailio_factory()
    connections = {t: await open_connection(kamailio, t) for t in ("tcp", "unix", "udp")}
    try:
        for connection in connections.values():
            await connection.call("core.uptime")
        old_pid = kamailio.pid
        kamailio.restart()
        assert kamailio.pid != old_pid

        for transport in ("tcp", "unix"):
            stream = connections[transport]
            async with asyncio.timeout(TIMEOUT):
                with pytest.raises((ConnectionLost, ConnectError)):
                    await stream.call("core.uptime")
            assert not stream.usable
            with pytest.raises(ConnectionLost):
                await stream.call("core.uptime")
            async with connection_to(kamailio, transport) as fresh:
                (uptime,) = await fresh.call("core.uptime")
                assert isinstance(uptime, Struct)

        # A datagram socket is connectionless: the restarted Kamailio answers on it.
        assert await connections["udp"].call("core.echo", "again") == ["again"]
    finally:
        for connection in connections.values():
            await connection.close()


@pytest.mark.kamailio
async def test_kamailio_stopped_gives_connect_errors(
    kamailio_factory: Callable[[], KamailioInstance],
) -> None:
    kamailio = kamailio_factory()
    udp = await open_connection(kamailio, "udp")
    try:
        kamailio.stop()
        with pytest.raises(ConnectError, match="ECONNREFUSED"):
            await connect(parse_address(kamailio.tcp), timeout=TIMEOUT)
        with pytest.raises(ConnectError, match="no socket file there"):
            await connect(parse_address(kamailio.unix), timeout=TIMEOUT)
        with pytest.raises(ConnectError, match="no socket file there"):
            await connect(parse_address(kamailio.unixd), timeout=TIMEOUT)
        # Nothing listens on the UDP port any more: the ICMP error arrives, not a timeout.
        with pytest.raises(ConnectError, match="ECONNREFUSED"):
            await udp.call("core.uptime", timeout=TIMEOUT)
        assert not udp.usable
    finally:
        await udp.close()


@pytest.mark.kamailio
async def test_connection_beyond_kamailios_limit_of_128_is_an_error_not_a_hang(
    kamailio_factory: Callable[[], KamailioInstance],
) -> None:
    kamailio = kamailio_factory()
    connections: list[Connection] = []
    try:
        async with asyncio.timeout(TIMEOUT * 4):
            for index in range(128):
                connections.append(await open_connection(kamailio, "tcp" if index % 2 else "unix"))
            await asyncio.gather(*(c.call("core.echo", i) for i, c in enumerate(connections)))

            extra = await open_connection(kamailio, "tcp")
            connections.append(extra)
            with pytest.raises(ConnectionLost, match="limit of 128"):
                await extra.call("core.uptime")
            assert not extra.usable

            # A slot freed is a slot usable again.
            await connections[0].close()
            await asyncio.sleep(0.1)
            async with connection_to(kamailio, "unix") as again:
                assert await again.call("core.echo", "in") == ["in"]
    finally:
        await asyncio.gather(*(c.close() for c in connections))


# --------------------------------------------------------------------------------------------
# Without Kamailio: refused connections, and fake servers for what Kamailio cannot do


async def test_connect_refused_is_a_connect_error() -> None:
    (port,) = free_ports("tcp")
    with pytest.raises(ConnectError, match=rf"tcp:127.0.0.1:{port}: ECONNREFUSED"):
        await connect(Address("tcp", "127.0.0.1", port), timeout=TIMEOUT)


async def test_missing_unix_socket_is_a_connect_error(tmp_path: object) -> None:
    with pytest.raises(ConnectError, match="no socket file there"):
        await connect(parse_address("unix:/nonexistent/kamailio_ctl"), timeout=TIMEOUT)


async def test_stale_unix_socket_file_is_a_connect_error(tmp_path: pytest.TempPathFactory) -> None:
    path = f"{tmp_path}/stale_ctl"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)  # bound, never listening: what a crashed server leaves behind
    with pytest.raises(ConnectError, match="ECONNREFUSED"):
        await connect(parse_address(f"unix:{path}"), timeout=TIMEOUT)


class FakeServer:
    """A 127.0.0.1 TCP server that reads requests and hands each to `answer` (which may not)."""

    def __init__(self, answer: Callable[[int], bytes | None]) -> None:
        self.answer = answer
        self.writers: list[asyncio.StreamWriter] = []
        self.requests = 0
        self.request_seen = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        packets = PacketReader()
        while data := await reader.read(65536):
            packets.feed(data)
            while (packet := packets.next_packet()) is not None:
                self.requests += 1
                self.request_seen.set()
                reply = self.answer(packet.cookie)
                if reply is not None:
                    writer.write(reply)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Address]:
        server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        try:
            yield Address("tcp", "127.0.0.1", server.sockets[0].getsockname()[1])
        finally:
            server.close()
            for writer in self.writers:
                writer.close()
            await server.wait_closed()


async def test_timeout_breaks_the_connection() -> None:
    fake = FakeServer(lambda cookie: None)
    async with fake.running() as address:
        connection = await connect(address, timeout=TIMEOUT)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError, match=r"no reply within 0\.2 s"):
            await connection.call("core.uptime", timeout=0.2)
        assert 0.2 <= loop.time() - started < 1.0
        assert not connection.usable
        with pytest.raises(ConnectionLost, match=r"no reply within 0\.2 s"):
            await connection.call("core.uptime")
        await connection.close()


async def test_default_call_timeout_is_the_connect_timeout() -> None:
    fake = FakeServer(lambda cookie: None)
    async with fake.running() as address:
        connection = await connect(address, timeout=0.2)
        with pytest.raises(TimeoutError, match=r"no reply within 0\.2 s"):
            await connection.call_many([("core.uptime", ()), ("core.version", ())])
        await connection.close()


async def test_datagram_timeout_when_nothing_answers() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        address = Address("udp", "127.0.0.1", silent.getsockname()[1])
        connection = await connect(address, timeout=TIMEOUT)
        with pytest.raises(TimeoutError):
            await connection.call("core.uptime", timeout=0.2)
        assert not connection.usable
        await connection.close()


async def test_waiting_callers_get_connection_lost_when_a_call_breaks_it() -> None:
    fake = FakeServer(lambda cookie: None)
    async with fake.running() as address:
        connection = await connect(address, timeout=TIMEOUT)
        first = asyncio.create_task(connection.call("core.uptime", timeout=0.2))
        second = asyncio.create_task(connection.call("core.version"))
        with pytest.raises(TimeoutError):
            await first
        with pytest.raises(ConnectionLost):
            await second
        assert fake.requests == 1
        await connection.close()


async def test_cancelled_call_breaks_the_connection() -> None:
    fake = FakeServer(lambda cookie: None)
    async with fake.running() as address:
        connection = await connect(address, timeout=TIMEOUT)
        task = asyncio.create_task(connection.call("core.uptime"))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # A late reply to the abandoned request would be taken for the next one's.
        assert not connection.usable
        await connection.close()


async def test_cookie_mismatch_breaks_the_connection() -> None:
    fake = FakeServer(lambda cookie: encode_reply(["late"], (cookie + 1) & 0xFFFFFFFF))
    async with fake.running() as address:
        connection = await connect(address, timeout=TIMEOUT)
        with pytest.raises(CookieMismatch, match="does not match request cookie"):
            await connection.call("core.uptime")
        assert not connection.usable
        await connection.close()


async def test_server_closing_mid_call_is_connection_lost() -> None:
    fake = FakeServer(lambda cookie: None)
    async with fake.running() as address:
        connection = await connect(address, timeout=TIMEOUT)
        task = asyncio.create_task(connection.call("core.uptime"))
        async with asyncio.timeout(TIMEOUT):
            await fake.request_seen.wait()
        fake.writers[0].close()
        with pytest.raises(ConnectionLost, match="before the first reply"):
            await task
        await connection.close()


async def test_close_is_final_and_idempotent() -> None:
    fake = FakeServer(lambda cookie: encode_reply(["ok"], cookie))
    async with fake.running() as address:
        connection = await connect(address, timeout=TIMEOUT)
        assert await connection.call("core.echo") == ["ok"]
        assert await connection.call_many([]) == []
        await connection.close()
        await connection.close()
        assert not connection.usable
        with pytest.raises(ConnectionLost, match="connection closed"):
            await connection.call("core.echo")


# --------------------------------------------------------------------------------------------
# The fixtures' policy when Kamailio or sipp is not installed


def test_missing_binary_skips_with_install_hint_and_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import conftest

    monkeypatch.setattr(conftest, "find_binary", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y kamailio sip-tester"):
        conftest.require_binary("sipp")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y kamailio sip-tester"):
        conftest.require_binary("kamailio")
