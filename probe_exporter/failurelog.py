"""Which probe failures and refused targets reach the exporter's log, and how often.

A fleet's down target fails on every scrape and a typo'd target is refused on every scrape:
each is reported once when it starts (and once when it works again), the repeats at debug.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

from .probe import ProbeResult
from .probelog import PROBE_LOG

log = logging.getLogger("probe_exporter")


@dataclass(slots=True)
class _Failing:
    fault: tuple[str | None, frozenset[str]]  # the failed stage, and the collectors and sources
    since: float  # time.time() of the first failed probe
    probes: int  # failed probes since


class FailureLog:
    """Passes each probe's log on to the process log, reporting a failure once: when a target
    starts failing (or fails otherwise), and when it works again; while it keeps failing the
    same way, its lines go at debug. Keeps the failing (target, module) pairs, at most `limit`
    (the oldest forgotten first: its next failure is reported again).
    """

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._failing: OrderedDict[tuple[str, str], _Failing] = OrderedDict()

    def forward(self, result: ProbeResult) -> None:
        key = (result.target, result.module)
        before = self._failing.pop(key, None)
        if result.success and not result.failed:
            result.log.forward()
            if before is not None:
                stage, failed = before.fault
                PROBE_LOG.info(
                    "working again after %d failed probes in %s (%s)",
                    before.probes,
                    _duration(time.time() - before.since),
                    f"failed at stage {stage}" if stage else "failed: " + ", ".join(sorted(failed)),
                    extra={"target": result.target, "probe_module": result.module},
                )
            return
        fault = (result.stage, frozenset(result.failed))
        result.log.forward(quiet=before is not None and before.fault == fault)
        if before is None:
            before = _Failing(fault, time.time(), 0)
        before.fault = fault
        before.probes += 1
        self._failing[key] = before
        if len(self._failing) > self.limit:
            self._failing.popitem(last=False)


class RefusalLog:
    """Logs the refusal of a target text at warning the first time, then at debug: a typo'd
    target in a scrape config is refused on every scrape, forever. Keeps the last `limit`
    texts (the oldest forgotten first: its next refusal is reported again)."""

    def __init__(self, limit: int = 1024) -> None:
        self.limit = limit
        self._seen: OrderedDict[str, None] = OrderedDict()

    def report(self, target: str, detail: str) -> None:
        text = target[:256]  # the key and the log field: a request's target may be kilobytes
        repeated = text in self._seen
        if repeated:
            self._seen.move_to_end(text)
            log.debug("target rejected again: %s", detail, extra={"target": text})
            return
        self._seen[text] = None
        if len(self._seen) > self.limit:
            self._seen.popitem(last=False)
        log.warning(
            "target rejected: %s (its next refusals are logged at debug level)",
            detail,
            extra={"target": text},
        )


def _duration(seconds: float) -> str:
    """A duration as Prometheus writes one: 45s, 3m20s, 2h5m."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes}m"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"
