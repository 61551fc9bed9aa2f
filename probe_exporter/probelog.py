"""A probe's log: standard `logging` records, kept for `debug=true` and `/logs`, and passed on to
the process log as far as `--log.prober` (the `probe_exporter.probe` logger's level) lets them.

Every probe gets its own logger, which stamps its records with the probe's target and module.
All its records, debug ones included, go to the probe's ProbeLogCapture; the service passes them
on to the process log once the probe ended (`ProbeLogCapture.forward`), when it knows whether
they tell something new or repeat the failure of a target that stays down. Records are made
and formatted only when read: a full probe writes about 17 lines, and most are never looked
at, nor let through by `--log.prober`.
The history keeps records for minutes, so their arguments must be plain values: an exception
passed as one would keep its traceback, and every frame in it, alive as long; and long texts
are cut (logs.cut) as they are logged, so that a hostile Kamailio's megabytes are not kept.
"""

from __future__ import annotations

import logging
import threading
import time
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


# One line as logged: (level, wall-clock time, message, arguments, the probe's context).
_Entry = tuple[int, float, str, tuple[object, ...], dict[str, str]]


class ProbeLogCapture:
    """Keeps one probe's lines; `records` makes them logging records when first read, and
    `lines` formats them as the debug output shows them."""

    def __init__(self, started: float) -> None:
        # A line is kept as an _Entry until read, then replaced by its record.
        self._kept: list[_Entry | logging.LogRecord] = []
        self._highest = logging.NOTSET  # the highest level kept
        # Wall-clock time of the probe's start (`started` is time.monotonic()), to which each
        # line's time is relative.
        self._started = time.time() - (time.monotonic() - started)

    def keep(self, level: int, msg: str, args: tuple[object, ...], context: dict[str, str]) -> None:
        self._kept.append((level, time.time(), _cut_message(msg), _cut_arguments(args), context))
        if level > self._highest:
            self._highest = level

    @property
    def records(self) -> list[logging.LogRecord]:
        kept = self._kept
        for index, item in enumerate(kept):
            if isinstance(item, tuple):
                kept[index] = _record(*item)
        return kept  # type: ignore[return-value]  # every item is a record now

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
        enabled = PROBE_LOG.isEnabledFor
        if not self._kept or not enabled(logging.DEBUG if quiet else self._highest):
            return  # the usual case: none is, and no record need be made
        for record in self.records:
            level = logging.DEBUG if quiet else record.levelno
            if not enabled(level):
                continue
            if level != record.levelno:
                record = logging.makeLogRecord(record.__dict__)
                record.levelno, record.levelname = level, logging.getLevelName(level)
            PROBE_LOG.handle(record)


def _record(
    level: int, created: float, msg: str, args: tuple[object, ...], context: dict[str, str]
) -> logging.LogRecord:
    """The logging record of a kept line: a copy of the thread's template record, since what
    does not change from one line to the next (thread, process, source) need not be looked
    up again."""
    template = _TEMPLATES.get(threading.get_ident())
    if template is None:
        template = logging.LogRecord(
            PROBE_LOG.name, logging.DEBUG, _SOURCE, 0, "", (), None, _SOURCE
        ).__dict__
        _TEMPLATES[threading.get_ident()] = template
    record = logging.LogRecord.__new__(logging.LogRecord)
    fields = record.__dict__
    fields.update(template)
    fields.update(context)
    fields["msg"] = msg
    fields["args"] = args
    fields["levelno"] = level
    fields["levelname"] = logging.getLevelName(level)
    fields["created"] = created
    fields["msecs"] = int((created - int(created)) * 1000) + 0.0
    fields["relativeCreated"] += (created - template["created"]) * 1000
    return record


class ProbeLogger:
    """One probe's logger, with the logging.Logger calls a probe makes: `debug("... %s",
    value)` and the like. Each line goes straight to the capture, which keeps it as it is and
    makes its record only if someone reads it: a probe logs about 17 lines, and a record costs
    several times the line."""

    def __init__(self, target: str, module: str, capture: ProbeLogCapture) -> None:
        self.capture = capture
        self._context = {"target": target, "probe_module": module}

    def identify(self, target: str, module: str) -> None:
        """Names the probe's target and module once resolution found them."""
        self._context = {"target": target, "probe_module": module}

    def debug(self, msg: str, *args: object) -> None:
        self.capture.keep(logging.DEBUG, msg, args, self._context)

    def info(self, msg: str, *args: object) -> None:
        self.capture.keep(logging.INFO, msg, args, self._context)

    def warning(self, msg: str, *args: object) -> None:
        self.capture.keep(logging.WARNING, msg, args, self._context)

    def error(self, msg: str, *args: object) -> None:
        self.capture.keep(logging.ERROR, msg, args, self._context)


def _cut_message(msg: str) -> str:
    if len(msg) > _ARGUMENT_LIMIT:
        return cut(_escaped(msg), _ARGUMENT_LIMIT)
    return msg


def _cut_arguments(args: tuple[object, ...]) -> tuple[object, ...]:
    """The arguments with long texts cut, before they are kept."""
    for arg in args:
        if isinstance(arg, str) and len(arg) > _ARGUMENT_LIMIT:
            break
    else:
        return args
    return tuple(
        cut(_escaped(arg), _ARGUMENT_LIMIT) if isinstance(arg, str) else arg for arg in args
    )


def probe_logger(target: str, module: str, started: float) -> ProbeLogger:
    """A new probe's logger; `started` (time.monotonic()) is the time its lines count from."""
    return ProbeLogger(target, module, ProbeLogCapture(started))
