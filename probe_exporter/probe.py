"""One probe: one target, one deadline, every selected collector's RPCs pipelined on one connection.

The probe resolves its target first (a name an allow rule covers is looked up then, within the
probe's budget), then runs the RPCs and fetches the target's HTTP sources meanwhile. It never
raises for a target's failure: it returns `kamailio_up 0` with the failed stage
(`kamailio_probe_failure_info{stage}`), so that Prometheus keeps the probe's own metrics. Only a
target that must not be probed at all raises (TargetRefused). Each class of error maps to its
stage: ResolveError to resolve, ConnectError to connect, ConnectionLost to rpc, LimitExceeded
(a limit of the module's ProbeLimits, see limits.py) and too many samples to limit,
ProtocolError to decode, and every wait that ran out of time (ExporterTimeout, the probe's
deadline) to timeout.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

import aiohttp
from cachetools import TTLCache
from prometheus_client.metrics_core import Metric

from .binrpc.address import Address
from .binrpc.client import BusyTimeout, ConnectError, Connection, ConnectionLost, Reply
from .binrpc.codec import Fault, LimitExceeded, ProtocolError
from .collectors import COLLECTORS, Call, Collector, CollectorOptions
from .collectors.merge import merge_parsed
from .errors import ExporterError
from .limits import DEFAULT_LIMITS, INLINE_VALUES, ProbeBudget, ProbeLimits, offload
from .metrics import MetricFamily, drop_bad_samples
from .pool import ConnectionPool, PoolTimeout
from .probe_families import PROBE_FAMILIES as PROBE_FAMILIES
from .probe_families import STAGES as STAGES
from .probe_families import probe_families
from .probelog import ProbeLogCapture, ProbeLogger, probe_logger
from .sources import SourceError, fetch_source

LIST_METHODS = Call("system.listMethods")


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    """What to probe, once resolved: an allowed address and the effective settings."""

    name: str
    module: str
    address: Address
    collectors: tuple[Collector, ...]
    options: CollectorOptions
    timeout: float
    settings: Callable[[], str]  # the effective settings, for the debug output
    http_sources: Mapping[str, str] = field(default_factory=dict)
    limits: ProbeLimits = DEFAULT_LIMITS
    listed: bool = True  # a target of the config file, not an address an allow rule let in


class ResolveError(ExporterError):
    """The target's name did not resolve: the probe fails at stage resolve."""


class TargetRefused(ExporterError):
    """Resolution refused the target (not allowed, unknown module): no probe runs. `reason`
    is "forbidden" or "bad_request"; the message is one line."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# Resolves the requested target within the given seconds: raises ResolveError, or
# TargetRefused when the target must not be probed at all.
Resolver = Callable[[float], Awaitable[ProbeTarget]]


@dataclass(frozen=True, slots=True)
class ProbeRequest:
    """A probe as requested: the target and module as named, the scrape's time budget (the
    target's own timeout may be lower), and how to resolve them."""

    target: str
    module: str
    budget: float
    resolve: Resolver


@dataclass(slots=True)
class ProbeResult:
    target: str
    module: str
    families: list[MetricFamily]
    success: bool
    stage: str | None
    duration: float
    log: ProbeLogCapture
    settings: Callable[[], str]
    reason: str | None = None  # why the probe failed, in one line (its log's error)
    failed: tuple[str, ...] = ()  # the collectors and HTTP sources that failed


class _StageFailure(Exception):
    def __init__(self, stage: str, message: str) -> None:
        super().__init__(message)
        self.stage = stage


# Why a probe ran out of time, by the wait that did; the probe's deadline itself says
# how far the connection got.
_TIMEOUT_REASONS: tuple[tuple[type[BaseException], str], ...] = (
    (PoolTimeout, "waiting for a connection other probes were opening"),
    (BusyTimeout, "waiting for other probes' calls on the connection"),
)


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
        """Resolves and probes one target; `started` (time.monotonic) lets a caller count its
        own work too. Raises TargetRefused when resolution refuses the target."""
        return await _ProbeRun(
            self, request, time.monotonic() if started is None else started
        ).run()


class _ProbeRun:
    """The state of one probe while it runs."""

    def __init__(self, prober: Prober, request: ProbeRequest, started: float) -> None:
        self.prober = prober
        self.request = request
        self.target: ProbeTarget | None = None  # once resolved
        self.started = started
        self.loop = asyncio.get_running_loop()
        self.timeout = request.budget
        self.deadline = self.loop.time() + request.budget - (time.monotonic() - started)
        self.log = probe_logger(request.target, request.module, started)
        self.families: list[MetricFamily] = []
        # (collector or HTTP source, succeeded, seconds)
        self.outcomes: list[tuple[str, bool, float]] = []
        # samples dropped, by collector or source: invalid values; repeated series of collectors
        self.invalid: dict[str, int] = {}
        self.duplicates: dict[str, int] = {}
        self.connection: Connection | None = None  # the last one tried: how far did it get?
        self.budget = ProbeBudget(DEFAULT_LIMITS)  # the target's limits once resolved

    def remaining(self) -> float:
        return max(self.deadline - self.loop.time(), 0.001)

    async def run(self) -> ProbeResult:
        plog = self.log
        stage: str | None = None
        reason: str | None = None
        http_tasks: dict[str, asyncio.Task[list[Metric]]] = {}
        duplicates: dict[str, int] = {}
        try:
            try:
                target = await self._resolve()
                http_tasks = {
                    source: asyncio.create_task(
                        fetch_source(self.prober.http, url, self.remaining())
                    )
                    for source, url in target.http_sources.items()
                }
                async with asyncio.timeout_at(self.deadline):
                    await self._rpcs(target)
            except _StageFailure as failure:
                stage, reason = failure.stage, str(failure)
                plog.error("probe failed at stage %s: %s", stage, reason)
            except TimeoutError as exc:  # the probe's deadline, or one of the waits within it
                stage = "timeout"
                waited = next(
                    (text for kind, text in _TIMEOUT_REASONS if isinstance(exc, kind)), None
                )
                if waited is None:
                    waited = self.connection.progress if self.connection else "no connection yet"
                reason = f"no complete answer within {self.timeout:.3f}s ({waited})"
                plog.error("probe failed at stage timeout: %s", reason)
            duplicates = await self._merge_http(http_tasks)
        except BaseException:
            # Cancelled because the scraper went away: no result takes the log to the service.
            plog.capture.forward()
            raise
        finally:  # also when cancelled because the scraper went away
            for task in http_tasks.values():
                if not task.done():
                    task.cancel()
                elif not task.cancelled():
                    task.exception()  # reported above, or moot once the probe is abandoned
        duration = time.monotonic() - self.started
        self.families.extend(
            probe_families(
                stage,
                duration,
                self.timeout,
                self.outcomes,
                duplicates,
                self.invalid,
                self.duplicates,
            )
        )
        if stage is None:
            plog.debug("probe succeeded in %.4fs", duration)
        resolved = self.target
        return ProbeResult(
            resolved.name if resolved else self.request.target,
            resolved.module if resolved else self.request.module,
            self.families,
            stage is None,
            stage,
            duration,
            plog.capture,
            resolved.settings if resolved else self._unresolved_settings,
            reason,
            tuple(name for name, ok, _ in self.outcomes if not ok),
        )

    def _unresolved_settings(self) -> str:
        return f"target: {self.request.target}\nmodule: {self.request.module}\n"

    async def _resolve(self) -> ProbeTarget:
        """Resolves the target within the scrape's budget, then sets the probe's deadline."""
        try:
            target = await self.request.resolve(self.remaining())
        except ResolveError as exc:
            raise _StageFailure("resolve", str(exc)) from exc
        self.target = target
        self.budget = ProbeBudget(target.limits)
        self.timeout = target.timeout
        self.deadline = self.loop.time() + target.timeout - (time.monotonic() - self.started)
        self.log.identify(target.name, target.module)
        self.log.debug(
            "probing %s with module %r, timeout %.3fs",
            target.address,
            target.module,
            target.timeout,
        )
        return target

    async def _rpcs(self, target: ProbeTarget) -> None:
        address = target.address
        for attempt in (1, 2):
            reused = False
            try:
                async with self.prober.pool.lease(
                    address, timeout=self.remaining(), listed=target.listed
                ) as lease:
                    reused = lease.reused
                    self.connection = lease.connection
                    self.log.debug(
                        "%s connection to %s", "reusing" if reused else "opened", address
                    )
                    await self._collect(target, lease.connection, reused)
                    return
            except ConnectError as exc:
                raise _StageFailure("connect", str(exc)) from exc
            except ConnectionLost as exc:
                # A pooled connection may predate a Kamailio restart: replace it once.
                if attempt == 1 and reused:
                    self.log.info("pooled connection lost (%s), reconnecting once", str(exc))
                    self.families.clear()
                    self.outcomes.clear()
                    self.invalid.clear()
                    self.duplicates.clear()
                    self.budget = ProbeBudget(target.limits)
                    continue
                raise _StageFailure("rpc", str(exc)) from exc
            except LimitExceeded as exc:
                raise _StageFailure("limit", self.budget.over_limit(exc)) from exc
            except ProtocolError as exc:
                raise _StageFailure("decode", str(exc)) from exc

    async def _collect(self, target: ProbeTarget, connection: Connection, reused: bool) -> None:
        plog, loop = self.log, self.loop
        options = target.options
        methods = self.prober.methods.get(target.address) if reused else None
        collectors = [c for c in target.collectors if methods is None or c.methods & methods]
        calls: list[Call] = [] if methods is not None else [LIST_METHODS]
        spans: list[tuple[Collector, int, int]] = []
        for collector in collectors:
            collector_calls = collector.calls(options)
            spans.append((collector, len(calls), len(calls) + len(collector_calls)))
            calls.extend(collector_calls)

        rpc_started = loop.time()
        replies, counts, arrivals = await self._exchange(connection, calls)
        plog.debug("%d RPCs answered in %.4fs", len(calls), loop.time() - rpc_started)
        if methods is None:
            methods = _methods_from(replies[0], plog)
            self.prober.methods[target.address] = methods

        second_round: list[tuple[Collector, list[Call]]] = []
        for collector, first, last in spans:
            if not collector.methods & methods:
                plog.debug("collector %s: module not loaded, skipped", collector.name)
                continue
            collector_replies = replies[first:last]
            more = collector.fallback(collector_replies, options) if collector.fallback else []
            if more:
                plog.debug(
                    "collector %s: falling back to %d RPCs (%s)",
                    collector.name,
                    len(more),
                    _first_fault(collector_replies),
                )
                second_round.append((collector, more))
                continue
            ready = arrivals[last - 1] if last > first else rpc_started
            await self._run_one(
                collector, collector_replies, sum(counts[first:last]), target, ready - rpc_started
            )

        if second_round:
            calls = [call for _, more in second_round for call in more]
            replies, counts, arrivals = await self._exchange(connection, calls)
            first = 0
            for collector, more in second_round:
                last = first + len(more)
                await self._run_one(
                    collector,
                    replies[first:last],
                    sum(counts[first:last]),
                    target,
                    arrivals[last - 1] - rpc_started,
                )
                first = last

    async def _run_one(
        self,
        collector: Collector,
        replies: Sequence[Reply],
        values: int,
        target: ProbeTarget,
        waited: float,
    ) -> None:
        """Runs one collector on its replies (`values` decoded values); `waited` is how long
        its replies took to come. Many values are worked on in a worker thread."""
        collect_started = time.perf_counter()
        try:
            if values > INLINE_VALUES:
                produced, duplicates, invalid = await offload(
                    _collect_checked, collector, replies, target.options
                )
            else:
                produced, duplicates, invalid = _collect_checked(collector, replies, target.options)
        except Exception as exc:  # one collector's failure never drops the others' metrics
            self.log.error("collector %s failed: %s", collector.name, str(exc))
            self.outcomes.append(
                (collector.name, False, waited + time.perf_counter() - collect_started)
            )
            return
        if duplicates:
            self.duplicates[collector.name] = duplicates
        if invalid:
            self.invalid[collector.name] = invalid
        over = self.budget.count_samples(produced)
        if over:
            self.families.clear()
            self.outcomes.clear()
            self.invalid.clear()
            self.duplicates.clear()
            raise _StageFailure("limit", over)
        self.families.extend(produced)
        self.outcomes.append((collector.name, True, waited + time.perf_counter() - collect_started))
        self.log.debug("collector %s: %d families", collector.name, len(produced))

    async def _exchange(
        self, connection: Connection, calls: Sequence[Call]
    ) -> tuple[list[Reply], list[int], list[float]]:
        return await self.budget.exchange(
            connection, [(c.method, c.params) for c in calls], self.remaining()
        )

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
                self.log.warning("%s: no answer before the deadline", source)
                self.outcomes.append((source, False, self.loop.time() - started))
                continue
            try:
                merged, dropped, invalid = merge_parsed(self.families, task.result(), source)
            except SourceError as exc:  # its message names the URL without its secrets
                self.log.warning("%s: %s", source, str(exc))
                self.outcomes.append((source, False, self.loop.time() - started))
                continue
            except Exception as exc:  # reported as the source's failure, never the probe's
                self.log.warning("%s: %s: %s", source, type(exc).__name__, str(exc))
                self.outcomes.append((source, False, self.loop.time() - started))
                continue
            over = self.budget.count_samples(merged)
            if over:  # the source's failure: the Kamailio answered
                self.log.warning("%s: dropped: %s", source, over)
                self.outcomes.append((source, False, self.loop.time() - started))
                continue
            self.families.extend(merged)
            duplicates[source] = dropped
            if invalid:
                self.invalid[source] = invalid
            if dropped or invalid:
                self.log.debug(
                    "%s: dropped %d samples of names the exporter has or reserves or of repeated"
                    " series, and %d of invalid values",
                    source,
                    dropped,
                    invalid,
                )
            self.outcomes.append((source, True, self.loop.time() - started))
        return duplicates


# The methods collectors need: all a probe asks of system.listMethods. Targets keep only these,
# in sets shared by the targets that offer the same (a fleet of thousands of Kamailios would
# otherwise hold thousands of copies of ~200 method names).
_COLLECTOR_METHODS = frozenset(m for c in COLLECTORS.values() for m in c.methods)
_shared_method_sets: dict[frozenset[str], frozenset[str]] = {}
_SHARED_METHOD_SETS_LIMIT = 1024


def _methods_from(reply: Reply, plog: ProbeLogger) -> frozenset[str]:
    if isinstance(reply, Fault):
        # Without the list, run every collector; a module that is not loaded answers with a
        # FAULT that its collector reports.
        plog.warning("system.listMethods failed (%d %s)", reply.code, reply.message)
        return _COLLECTOR_METHODS
    offered = _COLLECTOR_METHODS.intersection(v for v in reply if isinstance(v, str))
    if len(_shared_method_sets) >= _SHARED_METHOD_SETS_LIMIT:
        _shared_method_sets.clear()
    return _shared_method_sets.setdefault(offered, offered)


def _collect_checked(
    collector: Collector, replies: Sequence[Reply], options: CollectorOptions
) -> tuple[list[MetricFamily], int, int]:
    """A collector's families with bad samples dropped, and how many were (repeated series,
    invalid values)."""
    produced = collector.collect(replies, options)
    duplicates, invalid = drop_bad_samples(produced)
    return produced, duplicates, invalid


def _first_fault(replies: Sequence[Reply]) -> str:
    for reply in replies:
        if isinstance(reply, Fault):
            return f"FAULT {reply.code} {reply.message}"
    return "no fault"


@functools.lru_cache(maxsize=256)  # asked on every probe; a config has a few modules
def expand_collectors(names: tuple[str, ...]) -> tuple[Collector, ...]:
    """The collectors a module names, "all" meaning every one, in registry order."""
    if "all" in names:
        return tuple(COLLECTORS.values())
    wanted = set(names)
    return tuple(c for name, c in COLLECTORS.items() if name in wanted)
