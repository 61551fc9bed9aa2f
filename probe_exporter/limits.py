"""What one probe may consume, and where work too big for one step of the event loop runs.

A probe's CPU and memory grow with what its target sends: a reply of empty arrays costs two bytes
a value on the wire and a hundred in memory, a statistic with a new name a few dozen
microseconds. So each probe has limits (per module), like Prometheus' `body_size_limit` and
`sample_limit`; a probe over one fails at stage `limit`, naming it. Within the limits, replies
are decoded in slices of a few milliseconds (codec.decode_slices), and a collector given many
values, or a large output to render, runs in a worker thread: the event loop, which serves every
other probe, then takes turns with it (the interpreter switches threads every few milliseconds)
instead of waiting for it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from .binrpc.client import Connection, RepliesTooLarge
from .binrpc.codec import (
    LimitExceeded,
    PacketTooLarge,
    Param,
    ProtocolError,
    Reply,
    TooManyRecords,
    Value,
    decode_slices,
)
from .metrics import MetricFamily, sample_count

T = TypeVar("T")

# Up to this many decoded values a collector runs on the event loop (a millisecond or so in
# the worst case measured: statistics with names never seen before); beyond, in a worker thread.
INLINE_VALUES = 1024
# Up to this many samples a probe's output is rendered on the event loop.
INLINE_SAMPLES = 4096
# Worker threads for big work: two, so that one target's work does not hold up every other's,
# and few, so that the event loop keeps most of its turns.
WORKERS = 2


@dataclass(frozen=True, slots=True)
class ProbeLimits:
    """A module's limits on one probe (see the README's "Limits and security")."""

    max_reply_bytes: int = 1 << 20  # one RPC's reply packet, header included
    max_probe_bytes: int = 4 << 20  # every reply of the probe, both rounds
    max_values: int = 100_000  # values decoded from the replies, in all
    max_samples: int = 20_000  # samples in the output, merged sources included


DEFAULT_LIMITS = ProbeLimits()

_executor = concurrent.futures.ThreadPoolExecutor(WORKERS, thread_name_prefix="probe-work")


async def offload(work: Callable[..., T], *args: object) -> T:
    """Runs `work(*args)` in a worker thread. Cancelling the wait does not stop the work (a
    thread cannot be stopped), which the limits keep short."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor, functools.partial(work, *args))


class ProbeBudget:
    """What one probe consumed of its limits, and the work that consumes it: the RPC rounds
    and the counting of the output's samples."""

    def __init__(self, limits: ProbeLimits) -> None:
        self.limits = limits
        self.reply_bytes = 0
        self.values = 0
        self.samples = 0

    async def exchange(
        self, connection: Connection, calls: Sequence[tuple[str, Sequence[Param]]], timeout: float
    ) -> tuple[list[Reply], list[int], list[float]]:
        """Runs one round of calls within the limits: the replies, how many values each
        holds, and when each arrived. Raises LimitExceeded past a limit (see over_limit), and
        what Connection.exchange raises; a reply that cannot be used breaks the connection."""
        limits = self.limits
        arrivals: list[float] = []
        packets = await connection.exchange(
            calls,
            timeout=timeout,
            arrivals=arrivals,
            max_reply_bytes=limits.max_reply_bytes,
            max_batch_bytes=limits.max_probe_bytes - self.reply_bytes,
        )
        self.reply_bytes += sum(len(packet.body) for packet in packets)
        replies: list[Reply] = []
        counts: list[int] = []
        try:
            for packet in packets:
                # decode_slices pauses every SLICE_RECORDS records, to let other probes run;
                # inline, not a coroutine per reply: most replies are decoded in one slice
                slices = decode_slices(packet.body, limits.max_values - self.values)
                while True:
                    try:
                        next(slices)
                    except StopIteration as done:
                        decoded: tuple[list[Value], int] = done.value
                        break
                    await asyncio.sleep(0)
                values, count = decoded
                self.values += count
                counts.append(count)
                replies.append(packet.reply(values))
        except ProtocolError as exc:  # the peer sends what cannot be used: never again
            connection.discard(exc)
            raise
        return replies, counts, arrivals

    def count_samples(self, families: Sequence[MetricFamily]) -> str | None:
        """Counts samples to add to the output; when they would take it past max_samples,
        says so instead (and counts none)."""
        samples = self.samples + sample_count(families)
        if samples > self.limits.max_samples:
            return f"{samples} samples exceed max_samples {self.limits.max_samples}"
        self.samples = samples
        return None

    def over_limit(self, exc: LimitExceeded) -> str:
        """Which limit the probe went over, named by its key."""
        if isinstance(exc, PacketTooLarge):
            return f"reply of {exc.size} bytes exceeds max_reply_bytes {exc.limit}"
        if isinstance(exc, RepliesTooLarge):
            return (
                f"replies of more than {self.reply_bytes + exc.size} bytes exceed"
                f" max_probe_bytes {self.limits.max_probe_bytes}"
            )
        if isinstance(exc, TooManyRecords):
            return (
                f"replies of more than {self.limits.max_values} values exceed"
                f" max_values {self.limits.max_values}"
            )
        return str(exc)
