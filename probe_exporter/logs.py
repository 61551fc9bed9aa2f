"""Log output in the Prometheus ecosystem's formats: logfmt (default) and JSON, a line a record."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}
# Context a caller passes in `extra`: record attribute -> output key. (A LogRecord already has
# a `module` attribute, the Python module's name, so the probe's module travels as `probe_module`.)
CONTEXT_FIELDS = {
    "target": "target",
    "probe_module": "module",
    "listen": "listen",
    "config": "config",
}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        + f".{int(record.msecs):03d}Z",
        "level": logging.getLevelName(record.levelno).lower().replace("warning", "warn"),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    for attribute, key in CONTEXT_FIELDS.items():
        value = record.__dict__.get(attribute)
        if value is not None:
            fields[key] = value
    if record.exc_info:
        fields["err"] = logging.Formatter().formatException(record.exc_info)
    return fields


def _logfmt_value(value: Any) -> str:
    text = str(value)
    # Quoted (and escaped) unless plainly safe: values such as a probe's target come from
    # requests, and must not forge log lines or terminal escapes.
    if text and text.isprintable() and not any(c in text for c in ' ="\\'):
        return text
    return json.dumps(text)


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in _fields(record).items())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record), ensure_ascii=False)


def configure(level: str, fmt: str) -> None:
    """Sends every log record of the process to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[level])
    # aiohttp's access log would print a line per scrape; operators rarely want that.
    logging.getLogger("aiohttp.access").setLevel(max(LEVELS[level], logging.WARNING))
