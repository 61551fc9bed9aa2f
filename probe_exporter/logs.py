"""Log output in the Prometheus ecosystem's formats: logfmt (default) and JSON, a line a record."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

# The longest message a log line or a probe's kept log shows: a hostile Kamailio can put
# megabytes into an error's text, and every line would repeat them.
MESSAGE_LIMIT = 4096

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}
# The logger of every probe's records; `--log.prober` sets its level.
PROBE_LOGGER = "probe_exporter.probe"
# Context a caller passes in `extra`: record attribute -> output key. (A LogRecord already has
# a `module` attribute, the Python module's name, so the probe's module travels as `probe_module`.)
CONTEXT_FIELDS = {
    "target": "target",
    "probe_module": "module",
    "listen": "listen",
    "config": "config",
}


def cut(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """`text`, or its first `limit` characters and a marker saying how much was left out."""
    if len(text) <= limit:
        return text
    rest = len(text[limit:].encode("utf-8", "replace"))
    return f"{text[:limit]}... [cut {_size(rest)}]"


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / (1024 * 1024):.1f} MiB"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        + f".{int(record.msecs):03d}Z",
        "level": logging.getLevelName(record.levelno).lower().replace("warning", "warn"),
        "logger": record.name,
        "msg": cut(record.getMessage()),
    }
    for attribute, key in CONTEXT_FIELDS.items():
        value = record.__dict__.get(attribute)
        if value is not None:
            fields[key] = cut(str(value), 256)
    if record.exc_info:
        fields["err"] = cut(logging.Formatter().formatException(record.exc_info))
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


def configure(level: str, fmt: str, prober: str = "info") -> None:
    """Sends every log record of the process to stderr in the chosen format: the exporter's
    own at `level` and above, the probes' at `prober` and above (as blackbox_exporter's
    --log.prober, independent of `level`)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[level])
    logging.getLogger(PROBE_LOGGER).setLevel(LEVELS[prober])
    # aiohttp's access log would print a line per scrape; operators rarely want that.
    logging.getLogger("aiohttp.access").setLevel(max(LEVELS[level], logging.WARNING))
