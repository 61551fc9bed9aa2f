"""A probe's log: standard `logging` records, kept for `debug=true` and `/logs`, and passed on to
the process log when its level lets them through (as blackbox_exporter's scrape logger does).

Every probe gets its own logger, which stamps its records with the probe's target and module.
All its records, debug ones included, go to the probe's ProbeLogCapture; those that the
`probe_exporter.probe` logger is enabled for go on to that logger's handlers. Records are
formatted only when read: a full probe writes about 17 lines, and most are never looked at.
The history keeps records for minutes, so their arguments must be plain values: an exception
passed as one would keep its traceback, and every frame in it, alive as long.
"""

from __future__ import annotations

import logging
import time
from typing import Any

PROBE_LOG = logging.getLogger("probe_exporter.probe")


class ProbeLogCapture(logging.Handler):
    """Keeps one probe's records; `lines` formats them as the debug output shows them."""

    def __init__(self, started: float) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        # Wall-clock time of the probe's start (`started` is time.monotonic()), to which each
        # line's time is relative.
        self._started = time.time() - (time.monotonic() - started)

    def handle(self, record: logging.LogRecord) -> bool:
        # Without the handler lock: a probe logs from its event loop's thread only.
        self.records.append(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def lines(self) -> list[str]:
        return [
            f"{record.created - self._started:8.4f}s {record.levelname.lower():5} "
            f"{record.getMessage()}"
            for record in self.records
        ]


class ProbeLogger(logging.Logger):
    """One probe's logger; see the module docstring. Not registered with logging.getLogger."""

    def __init__(self, target: str, module: str, capture: ProbeLogCapture) -> None:
        super().__init__(PROBE_LOG.name, logging.DEBUG)
        self.parent = PROBE_LOG
        self.capture = capture
        self._context = {"target": target, "probe_module": module}

    def identify(self, target: str, module: str) -> None:
        """Names the probe's target and module once resolution found them."""
        self._context = {"target": target, "probe_module": module}

    def findCaller(
        self, stack_info: bool = False, stacklevel: int = 1
    ) -> tuple[str, int, str, str | None]:
        # Every record comes from the probe; walking the stack would cost more than the record.
        return "(probe)", 0, "(probe)", None

    def makeRecord(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = super().makeRecord(*args, **kwargs)
        record.__dict__.update(self._context)
        return record

    def handle(self, record: logging.LogRecord) -> None:
        self.capture.handle(record)
        if PROBE_LOG.isEnabledFor(record.levelno):
            PROBE_LOG.handle(record)


def probe_logger(target: str, module: str, started: float) -> ProbeLogger:
    """A new probe's logger; `started` (time.monotonic()) is the time its lines count from."""
    return ProbeLogger(target, module, ProbeLogCapture(started))
