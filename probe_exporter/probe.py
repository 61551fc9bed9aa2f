"""One probe: one target, one deadline, every selected collector's RPCs pipelined on one connection.

The probe never raises for a target's failure: it returns `kamailio_up 0` with the failed stage
(`kamailio_probe_failure_info{stage}`), so that Prometheus keeps the probe's own metrics.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import aiohttp
from cachetools import TTLCache
from prometheus_client.metrics_core import Metric

from .binrpc.address import Address
from .binrpc.client import ConnectError, Connection, ConnectionLost, Reply
from .binrpc.codec import Fault, ProtocolError
from .collectors import COLLECTORS, Call, Collector, CollectorOptions
from .collectors.merge import merge_parsed, parse_exposition
from .metrics import FamilyInfo, MetricFamily, drop_bad_samples
from .pool import ConnectionPool

log = logging.getLogger("probe_exporter.probe")

STAGES = ("resolve", "connect", "rpc", "decode", "timeout")
LIST_METHODS = Call("system.listMethods")
# xhttp_prom and rtpengine answer with tens of KB; parsing costs ~50 us a line, so a larger
# body would cost more CPU than the probe's whole budget.
HTTP_BODY_LIMIT = 1 << 20

# Families every probe emits, whatever its collectors (documented in METRICS.md).
UP = FamilyInfo(
    "kamailio_up",
    "gauge",
    "Whether Kamailio answered the probe's RPCs (1) or not (0).",
    (),
    "probe",
)
DURATION = FamilyInfo(
    "kamailio_probe_duration_seconds", "gauge", "How long the probe took, in seconds.", (), "probe"
)
TIMEOUT = FamilyInfo(
    "kamailio_probe_timeout_seconds",
    "gauge",
    "The probe's deadline in seconds (module or target timeout, or the scrape "
    "timeout less the offset).",
    (),
    "probe",
)
FAILURE = FamilyInfo(
    "kamailio_probe_failure_info",
    "gauge",
    "The stage at which a failed probe failed: resolve, connect, rpc, decode or timeout.",
    ("stage",),
    "probe",
)
COLLECTOR_SUCCESS = FamilyInfo(
    "kamailio_exporter_collector_success",
    "gauge",
    "Whether a collector succeeded (1) or failed (0) in this probe.",
    ("collector",),
    "probe",
)
COLLECTOR_DURATION = FamilyInfo(
    "kamailio_exporter_collector_duration_seconds",
    "gauge",
    "Seconds from the start of the probe's RPCs until the "
    "collector's replies were in and turned into metrics.",
    ("collector",),
    "probe",
)
MERGED_DUPLICATES = FamilyInfo(
    "kamailio_exporter_merged_duplicates",
    "gauge",
    "Samples dropped from a merged HTTP source because the exporter emits or reserves their "
    "name, another family of the probe's sources has it, or their series repeats.",
    ("source",),
    "probe",
)
INVALID_VALUES = FamilyInfo(
    "kamailio_exporter_invalid_values",
    "gauge",
    "Samples dropped because Prometheus cannot take their value (out of a float's range, a "
    "negative or NaN counter...), by collector or merged source.",
    ("collector",),
    "probe",
    "only collectors and sources that dropped any; the stats collector counts statistics "
    "that are not a %lu number in kamailio_exporter_stats_dropped",
)
DUPLICATE_SERIES = FamilyInfo(
    "kamailio_exporter_duplicate_series",
    "gauge",
    "Samples dropped because their series (name and labels) repeats one of the collector's.",
    ("collector",),
    "probe",
    "only collectors that dropped any",
)
PROBE_FAMILIES = (
    UP,
    DURATION,
    TIMEOUT,
    FAILURE,
    COLLECTOR_SUCCESS,
    COLLECTOR_DURATION,
    MERGED_DUPLICATES,
    INVALID_VALUES,
    DUPLICATE_SERIES,
)
_NONE: Mapping[str, int] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ProbeRequest:
    """What to probe: the address (already allowed and resolved) and the effective settings."""

    target: str
    module: str
    address: Address
    collectors: tuple[Collector, ...]
    options: CollectorOptions
    timeout: float
    http_sources: Mapping[str, str] = field(default_factory=dict)


class ProbeLog:
    """The lines of one probe: forwarded to the exporter's log and kept for `debug=true`.

    A line is kept as its time, level, `%` format and arguments, and formatted only when read:
    a full probe writes about 17 lines, and most probes' lines are never looked at.
    """

    __slots__ = ("_entries", "_extra", "_forward", "_started")

    def __init__(self, target: str, module: str, started: float, *, forward: bool = True) -> None:
        self._entries: list[tuple[float, int, str, tuple[object, ...]]] = []
        self._extra = {"target": target, "probe_module": module}
        self._started = started
        self._forward = forward

    def __call__(self, level: int, message: str, *args: object) -> None:
        self._entries.append((time.monotonic() - self._started, level, message, args))
        if self._forward and log.isEnabledFor(level):
            log.log(level, message, *args, extra=self._extra)

    @property
    def lines(self) -> list[str]:
        return [
            f"{elapsed:8.4f}s {logging.getLevelName(level).lower():5} "
            f"{message % args if args else message}"
            for elapsed, level, message, args in self._entries
        ]


@dataclass(slots=True)
class ProbeResult:
    families: list[MetricFamily]
    success: bool
    stage: str | None
    duration: float
    log: ProbeLog


class _StageFailure(Exception):
    def __init__(self, stage: str, message: str) -> None:
        super().__init__(message)
        self.stage = stage


class Prober:
    """Runs probes against pooled connections, remembering each target's RPC methods."""

    def __init__(
        self,
        pool: ConnectionPool,
        http: aiohttp.ClientSession,
        *,
        methods_ttl: float = 600.0,
        max_targets: int = 100_000,
    ) -> None:
        self.pool = pool
        self.http = http
        # Which RPCs each Kamailio offers (system.listMethods): learnt on every new connection,
        # since a new connection often means a restarted Kamailio, perhaps with other modules.
        self.methods: TTLCache[Address, frozenset[str]] = TTLCache(max_targets, methods_ttl)

    async def probe(self, request: ProbeRequest, *, started: float | None = None) -> ProbeResult:
        """Probes one target; `started` (time.monotonic) lets a caller count its own work too."""
        return await _ProbeRun(
            self, request, time.monotonic() if started is None else started
        ).run()


class _ProbeRun:
    """The state of one probe while it runs."""

    def __init__(self, prober: Prober, request: ProbeRequest, started: float) -> None:
        self.prober = prober
        self.request = request
        self.started = started
        self.loop = asyncio.get_running_loop()
        self.deadline = self.loop.time() + request.timeout - (time.monotonic() - started)
        self.log = ProbeLog(request.target, request.module, started)
        self.families: list[MetricFamily] = []
        # (collector or HTTP source, succeeded, seconds)
        self.outcomes: list[tuple[str, bool, float]] = []
        # samples dropped, by collector or source: invalid values; repeated series of collectors
        self.invalid: dict[str, int] = {}
        self.duplicates: dict[str, int] = {}
        self.connection: Connection | None = None  # the last one tried: how far did it get?

    def remaining(self) -> float:
        return max(self.deadline - self.loop.time(), 0.001)

    async def run(self) -> ProbeResult:
        request, plog = self.request, self.log
        plog(
            logging.DEBUG,
            "probing %s with module %r, timeout %.3fs",
            request.address,
            request.module,
            request.timeout,
        )
        http_tasks = {
            source: asyncio.create_task(self._fetch(url))
            for source, url in request.http_sources.items()
        }
        stage: str | None = None
        try:
            try:
                async with asyncio.timeout_at(self.deadline):
                    await self._rpcs()
            except _StageFailure as failure:
                stage = failure.stage
                plog(logging.ERROR, f"probe failed at stage {stage}: {failure}")
            except TimeoutError:
                stage = "timeout"
                progress = self.connection.progress if self.connection else "no connection yet"
                plog(
                    logging.ERROR,
                    f"probe failed at stage timeout: no complete answer within "
                    f"{request.timeout:.3f}s ({progress})",
                )
            duplicates = await self._merge_http(http_tasks)
        finally:  # also when cancelled because the scraper went away
            for task in http_tasks.values():
                if not task.done():
                    task.cancel()
                elif not task.cancelled():
                    task.exception()  # reported above, or moot once the probe is abandoned
        duration = time.monotonic() - self.started
        self.families.extend(
            _probe_families(
                stage,
                duration,
                request.timeout,
                self.outcomes,
                duplicates,
                self.invalid,
                self.duplicates,
            )
        )
        if stage is None:
            plog(logging.DEBUG, "probe succeeded in %.4fs", duration)
        return ProbeResult(self.families, stage is None, stage, duration, plog)

    async def _rpcs(self) -> None:
        address = self.request.address
        for attempt in (1, 2):
            reused = False
            try:
                async with self.prober.pool.lease(address, timeout=self.remaining()) as lease:
                    reused = lease.reused
                    self.connection = lease.connection
                    self.log(
                        logging.DEBUG,
                        "%s connection to %s",
                        "reusing" if reused else "opened",
                        address,
                    )
                    await self._collect(lease.connection, reused)
                    return
            except ConnectError as exc:
                raise _StageFailure("connect", str(exc)) from exc
            except ConnectionLost as exc:
                # A pooled connection may predate a Kamailio restart: replace it once.
                if attempt == 1 and reused:
                    self.log(logging.INFO, f"pooled connection lost ({exc}), reconnecting once")
                    self.families.clear()
                    self.outcomes.clear()
                    self.invalid.clear()
                    self.duplicates.clear()
                    continue
                raise _StageFailure("rpc", str(exc)) from exc
            except ProtocolError as exc:
                raise _StageFailure("decode", str(exc)) from exc

    async def _collect(self, connection: Connection, reused: bool) -> None:
        request, plog, loop = self.request, self.log, self.loop
        options = request.options
        methods = self.prober.methods.get(request.address) if reused else None
        collectors = [c for c in request.collectors if methods is None or c.methods & methods]
        calls: list[Call] = [] if methods is not None else [LIST_METHODS]
        spans: list[tuple[Collector, int, int]] = []
        for collector in collectors:
            collector_calls = collector.calls(options)
            spans.append((collector, len(calls), len(calls) + len(collector_calls)))
            calls.extend(collector_calls)

        rpc_started = loop.time()
        arrivals: list[float] = []
        replies = await connection.call_many(
            [(c.method, c.params) for c in calls], timeout=self.remaining(), arrivals=arrivals
        )
        plog(logging.DEBUG, "%d RPCs answered in %.4fs", len(calls), loop.time() - rpc_started)
        if methods is None:
            methods = _methods_from(replies[0], plog)
            self.prober.methods[request.address] = methods

        second_round: list[tuple[Collector, list[Call]]] = []
        for collector, first, last in spans:
            if not collector.methods & methods:
                plog(logging.DEBUG, "collector %s: module not loaded, skipped", collector.name)
                continue
            collector_replies = replies[first:last]
            more = collector.fallback(collector_replies, options) if collector.fallback else []
            if more:
                plog(
                    logging.INFO,
                    f"collector {collector.name}: falling back to "
                    f"{len(more)} RPCs ({_first_fault(collector_replies)})",
                )
                second_round.append((collector, more))
                continue
            ready = arrivals[last - 1] if last > first else rpc_started
            self._run_one(collector, collector_replies, ready - rpc_started)

        if second_round:
            calls = [call for _, more in second_round for call in more]
            arrivals = []
            replies = await connection.call_many(
                [(c.method, c.params) for c in calls], timeout=self.remaining(), arrivals=arrivals
            )
            first = 0
            for collector, more in second_round:
                last = first + len(more)
                self._run_one(collector, replies[first:last], arrivals[last - 1] - rpc_started)
                first = last

    def _run_one(self, collector: Collector, replies: Sequence[Reply], waited: float) -> None:
        """Runs one collector on its replies; `waited` is how long its replies took to come."""
        collect_started = time.perf_counter()
        try:
            produced = collector.collect(replies, self.request.options)
        except Exception as exc:  # one collector's failure never drops the others' metrics
            self.log(logging.ERROR, f"collector {collector.name} failed: {exc}")
            self.outcomes.append(
                (collector.name, False, waited + time.perf_counter() - collect_started)
            )
            return
        duplicates, invalid = drop_bad_samples(produced)
        if duplicates:
            self.duplicates[collector.name] = duplicates
        if invalid:
            self.invalid[collector.name] = invalid
        self.families.extend(produced)
        self.outcomes.append((collector.name, True, waited + time.perf_counter() - collect_started))
        self.log(logging.DEBUG, "collector %s: %d families", collector.name, len(produced))

    async def _fetch(self, url: str) -> list[Metric]:
        """Fetches and parses an HTTP source, within the probe's deadline."""
        timeout = aiohttp.ClientTimeout(total=self.remaining())
        # No redirects: a redirect could send the exporter to an address no one allowed.
        async with self.prober.http.get(url, timeout=timeout, allow_redirects=False) as response:
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status} {response.reason}")
            if (response.content_length or 0) > HTTP_BODY_LIMIT:
                raise RuntimeError(f"body larger than {HTTP_BODY_LIMIT} bytes")
            body = bytearray()
            async for chunk in response.content.iter_any():
                body += chunk
                if len(body) > HTTP_BODY_LIMIT:
                    raise RuntimeError(f"body larger than {HTTP_BODY_LIMIT} bytes")
        # Parsing is the costly part: off the event loop, so other probes go on meanwhile.
        return await asyncio.to_thread(parse_exposition, body.decode("utf-8", errors="replace"))

    async def _merge_http(self, tasks: Mapping[str, asyncio.Task[list[Metric]]]) -> dict[str, int]:
        """Merges what each HTTP source answered in time; returns the duplicates dropped."""
        duplicates: dict[str, int] = {}
        if not tasks:
            return duplicates
        started = self.loop.time()
        await asyncio.wait(tasks.values(), timeout=max(self.deadline - self.loop.time(), 0))
        for source, task in tasks.items():
            if not task.done():
                task.cancel()
                self.log(logging.WARNING, f"{source}: no answer before the deadline")
                self.outcomes.append((source, False, self.loop.time() - started))
                continue
            try:
                merged, dropped, invalid = merge_parsed(self.families, task.result(), source)
            except Exception as exc:  # reported as the source's failure, never the probe's
                self.log(logging.WARNING, f"{source}: {type(exc).__name__}: {exc}")
                self.outcomes.append((source, False, self.loop.time() - started))
                continue
            self.families.extend(merged)
            duplicates[source] = dropped
            if invalid:
                self.invalid[source] = invalid
            if dropped or invalid:
                self.log(
                    logging.INFO,
                    f"{source}: dropped {dropped} samples of names the exporter has or reserves "
                    f"or of repeated series, and {invalid} of invalid values",
                )
            self.outcomes.append((source, True, self.loop.time() - started))
        return duplicates


# The methods collectors need: all a probe asks of system.listMethods. Targets keep only these,
# in sets shared by the targets that offer the same (a fleet of thousands of Kamailios would
# otherwise hold thousands of copies of ~200 method names).
_COLLECTOR_METHODS = frozenset(m for c in COLLECTORS.values() for m in c.methods)
_shared_method_sets: dict[frozenset[str], frozenset[str]] = {}
_SHARED_METHOD_SETS_LIMIT = 1024


def _methods_from(reply: Reply, plog: ProbeLog) -> frozenset[str]:
    if isinstance(reply, Fault):
        # Without the list, run every collector; a module that is not loaded answers with a
        # FAULT that its collector reports.
        plog(logging.WARNING, f"system.listMethods failed ({reply.code} {reply.message})")
        return _COLLECTOR_METHODS
    offered = _COLLECTOR_METHODS.intersection(v for v in reply if isinstance(v, str))
    if len(_shared_method_sets) >= _SHARED_METHOD_SETS_LIMIT:
        _shared_method_sets.clear()
    return _shared_method_sets.setdefault(offered, offered)


def _first_fault(replies: Sequence[Reply]) -> str:
    for reply in replies:
        if isinstance(reply, Fault):
            return f"FAULT {reply.code} {reply.message}"
    return "no fault"


def failed_before_rpc(
    target: str, module: str, stage: str, reason: str, duration: float, timeout: float
) -> ProbeResult:
    """The result of a probe that failed before any RPC, e.g. a name that does not resolve.

    Its line is not forwarded to the exporter's log: the caller logs the failure itself."""
    plog = ProbeLog(target, module, time.monotonic() - duration, forward=False)
    plog(logging.ERROR, "probe failed at stage %s: %s", stage, reason)
    return ProbeResult(
        _probe_families(stage, duration, timeout, (), {}), False, stage, duration, plog
    )


def _probe_families(
    stage: str | None,
    duration: float,
    timeout: float,
    outcomes: Sequence[tuple[str, bool, float]],
    merged_duplicates: Mapping[str, int],
    invalid_values: Mapping[str, int] = _NONE,
    duplicate_series: Mapping[str, int] = _NONE,
) -> list[MetricFamily]:
    (
        up,
        duration_f,
        timeout_f,
        failure,
        success,
        collector_duration,
        duplicates,
        invalid,
        repeated,
    ) = (info.family() for info in PROBE_FAMILIES)
    up.add((), 0.0 if stage else 1.0)
    duration_f.add((), duration)
    timeout_f.add((), timeout)
    result = [up, duration_f, timeout_f]
    if stage:
        failure.add((stage,), 1.0)
        result.append(failure)
    if outcomes:
        for name, ok, seconds in outcomes:
            success.add((name,), 1.0 if ok else 0.0)
            collector_duration.add((name,), seconds)
        result += [success, collector_duration]
    if merged_duplicates:
        for source, count in merged_duplicates.items():
            duplicates.add((source,), float(count))
        result.append(duplicates)
    for family, counts in ((invalid, invalid_values), (repeated, duplicate_series)):
        if counts:
            family.samples += [((name,), count) for name, count in counts.items()]
            result.append(family)
    return result


@functools.lru_cache(maxsize=256)  # asked on every probe; a config has a few modules
def expand_collectors(names: tuple[str, ...]) -> tuple[Collector, ...]:
    """The collectors a module names, "all" meaning every one, in registry order."""
    if "all" in names:
        return tuple(COLLECTORS.values())
    wanted = set(names)
    return tuple(c for name, c in COLLECTORS.items() if name in wanted)
