"""Recent probes for the landing page and `/logs`, with failures kept longer than successes."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .probelog import ProbeLogCapture


@dataclass(frozen=True, slots=True)
class ProbeRecord:
    id: int
    target: str
    module: str
    success: bool
    stage: str | None
    duration: float
    log: ProbeLogCapture  # formatted only when someone asks: most probes are never looked at
    exposition: bytes  # the metrics as rendered for the scraper (before compression)
    settings: Callable[[], str]
    reason: str | None = None  # why it failed, in one line
    finished_at: float = 0.0  # time.time() when it ended


class ProbeHistory:
    """The last `limit` probes, plus up to `limit` failures pushed out by newer probes, within
    `max_bytes` of rendered metrics in all (the oldest go first).

    Memory stays bounded at about twice `limit` debug texts, and `max_bytes` however large each
    is; a flood of successes does not hide the failure an operator came to look at.
    """

    def __init__(self, limit: int, max_bytes: int = 64 << 20) -> None:
        self.limit = limit
        self.max_bytes = max_bytes
        self.bytes = 0  # the rendered metrics kept
        self._ids = itertools.count(1)
        self._recent: deque[ProbeRecord] = deque()
        self._failures: deque[ProbeRecord] = deque()

    def add(
        self,
        target: str,
        module: str,
        success: bool,
        stage: str | None,
        duration: float,
        log: ProbeLogCapture,
        exposition: bytes,
        settings: Callable[[], str],
        reason: str | None = None,
        finished_at: float = 0.0,
    ) -> ProbeRecord | None:
        if self.limit <= 0:
            return None
        record = ProbeRecord(
            next(self._ids),
            target,
            module,
            success,
            stage,
            duration,
            log,
            exposition,
            settings,
            reason,
            finished_at,
        )
        self._recent.append(record)
        self.bytes += len(exposition)
        if len(self._recent) > self.limit:
            dropped = self._recent.popleft()
            if not dropped.success:
                self._failures.append(dropped)
                if len(self._failures) > self.limit:
                    self.bytes -= len(self._failures.popleft().exposition)
            else:
                self.bytes -= len(dropped.exposition)
        while self.bytes > self.max_bytes and (self._failures or len(self._recent) > 1):
            oldest = self._failures if self._failures else self._recent
            self.bytes -= len(oldest.popleft().exposition)
        return record

    def __iter__(self) -> Iterator[ProbeRecord]:
        """Newest first: recent probes, then the older failures kept apart."""
        yield from reversed(self._recent)
        yield from reversed(self._failures)

    def get(self, probe_id: int) -> ProbeRecord | None:
        return next((r for r in self if r.id == probe_id), None)

    def latest_for(self, target: str, module: str | None) -> ProbeRecord | None:
        return next(
            (r for r in self if r.target == target and (module is None or r.module == module)), None
        )
