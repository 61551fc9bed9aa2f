"""A probe's log: standard `logging` records, kept for `debug=true` and `/logs`, and passed on to
the process log as far as `--log.prober` (the `probe_exporter.probe` logger's level) lets them.

Every probe gets its own logger, which stamps its records with the probe's target and module.
All its records, debug ones included, go to the probe's ProbeLogCapture; the service passes them
on to the process log once the probe ended (`ProbeLogCapture.forward`), when it knows whether
they tell something new or repeat the failure of a target that stays down. Records are
formatted only when read: a full probe writes about 17 lines, and most are never looked at.
The history keeps records for minutes, so their arguments must be plain values: an exception
passed as one would keep its traceback, and every frame in it, alive as long; and long texts
are cut (logs.cut) as they are logged, so that a hostile Kamailio's megabytes are not kept.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from .logs import MESSAGE_LIMIT, PROBE_LOGGER, cut

PROBE_LOG = logging.getLogger(PROBE_LOGGER)
_SOURCE = "(probe)"  # the records' file and function: every one comes from the probe
# Per thread (in practice, the event loop's): the fields of a record no probe line changes.
_TEMPLATES: dict[int, dict[str, Any]] = {}
# Control characters as a str's repr writes them: a Kamailio's texts may hold any, and the
# debug output is read in terminals.
_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}


# Long arguments are cut to half a message as they are logged: the message they make is then cut
# again only when several are long, and their own markers say how much was left out.
_ARGUMENT_LIMIT = MESSAGE_LIMIT // 2


def _escaped(text: str) -> str:
    return text if text.isprintable() else text.translate(_ESCAPES)


class ProbeLogCapture(logging.Handler):
    """Keeps one probe's records; `lines` formats them as the debug output shows them."""

    def __init__(self, started: float) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        # Wall-clock time of the probe's start (`started` is time.monotonic()), to which each
        # line's time is relative.
        self._started = time.time() - (time.monotonic() - started)

    def createLock(self) -> None:
        # No lock: a probe logs from its event loop's thread only.
        self.lock = None

    def handle(self, record: logging.LogRecord) -> bool:
        self.records.append(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def lines(self) -> list[str]:
        return [
            f"{record.created - self._started:8.4f}s {record.levelname.lower():5} "
            f"{cut(_escaped(record.getMessage()))}"
            for record in self.records
        ]

    def forward(self, *, quiet: bool = False) -> None:
        """Passes the records on to the process log, those `--log.prober` lets through;
        `quiet` passes them at debug (a failure already reported)."""
        for record in self.records:
            level = logging.DEBUG if quiet else record.levelno
            if not PROBE_LOG.isEnabledFor(level):
                continue
            if level != record.levelno:
                record = logging.makeLogRecord(record.__dict__)
                record.levelno, record.levelname = level, logging.getLevelName(level)
            PROBE_LOG.handle(record)


class ProbeLogger(logging.Logger):
    """One probe's logger; see the module docstring. Not registered with logging.getLogger.

    Its records are copies of a template record made once per thread: what does not change
    from one line to the next (thread, process, source; then the probe's target and module) is
    copied rather than looked up again for each line.
    """

    def __init__(self, target: str, module: str, capture: ProbeLogCapture) -> None:
        super().__init__(PROBE_LOG.name, logging.DEBUG)
        self.parent = PROBE_LOG
        self.capture = capture
        self._context = {"target": target, "probe_module": module}
        template = _TEMPLATES.get(threading.get_ident())
        if template is None:
            template = logging.LogRecord(
                PROBE_LOG.name, logging.DEBUG, _SOURCE, 0, "", (), None, _SOURCE
            ).__dict__
            _TEMPLATES[threading.get_ident()] = template
        self._template = {**template, **self._context}

    def identify(self, target: str, module: str) -> None:
        """Names the probe's target and module once resolution found them."""
        self._context = {"target": target, "probe_module": module}
        self._template.update(self._context)

    def findCaller(
        self, stack_info: bool = False, stacklevel: int = 1
    ) -> tuple[str, int, str, str | None]:
        # Every record comes from the probe; walking the stack would cost more than the record.
        return _SOURCE, 0, _SOURCE, None

    def makeRecord(
        self,
        name: str,
        level: int,
        fn: str,
        lno: int,
        msg: object,
        args: Any,
        exc_info: Any,
        func: str | None = None,
        extra: Mapping[str, object] | None = None,
        sinfo: str | None = None,
    ) -> logging.LogRecord:
        if exc_info or extra or sinfo or (len(args) == 1 and isinstance(args[0], Mapping)):
            # Not how the probe logs: the general way.
            record = super().makeRecord(
                name, level, fn, lno, msg, args, exc_info, func, extra, sinfo
            )
            record.__dict__.update(self._context)
            return record
        record = logging.LogRecord.__new__(logging.LogRecord)
        fields = record.__dict__
        fields.update(self._template)
        created = time.time()
        fields["msg"] = msg
        fields["args"] = args
        fields["levelno"] = level
        fields["levelname"] = logging.getLevelName(level)
        fields["created"] = created
        fields["msecs"] = int((created - int(created)) * 1000) + 0.0
        fields["relativeCreated"] += (created - self._template["created"]) * 1000
        return record

    def handle(self, record: logging.LogRecord) -> None:
        _cut_arguments(record)
        self.capture.handle(record)


def _cut_arguments(record: logging.LogRecord) -> None:
    """Cuts long texts among the record's message and arguments before they are kept."""
    if isinstance(record.msg, str) and len(record.msg) > _ARGUMENT_LIMIT:
        record.msg = cut(_escaped(record.msg), _ARGUMENT_LIMIT)
    args = record.args
    if isinstance(args, tuple) and any(
        isinstance(arg, str) and len(arg) > _ARGUMENT_LIMIT for arg in args
    ):
        record.args = tuple(
            cut(_escaped(arg), _ARGUMENT_LIMIT) if isinstance(arg, str) else arg for arg in args
        )


def probe_logger(target: str, module: str, started: float) -> ProbeLogger:
    """A new probe's logger; `started` (time.monotonic()) is the time its lines count from."""
    return ProbeLogger(target, module, ProbeLogCapture(started))
