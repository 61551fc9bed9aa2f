"""How probe logs reach the process log: cut when long, a failure reported when it starts and when
it ends (at debug while it repeats), and --log.prober's level independent of --log.level."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator

import pytest

from probe_exporter import logs
from probe_exporter.probe import ProbeResult
from probe_exporter.probelog import PROBE_LOG, probe_logger
from probe_exporter.service import FailureLog, RefusalLog


def result(target: str, stage: str | None, failed: tuple[str, ...] = ()) -> ProbeResult:
    """A finished probe of `target` whose log says what failed, as a probe's does."""
    plog = probe_logger(target, "default", time.monotonic())
    plog.debug("probing %s", target)
    if stage:
        plog.error("probe failed at stage %s: %s", stage, "ECONNREFUSED")
    for name in failed:
        plog.warning("%s: cannot connect", name)
    return ProbeResult(
        target, "default", [], stage is None, stage, 0.1, plog.capture, str, failed=failed
    )


class Forwarded:
    """The records that reach the process log, with --log.prober at debug."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog

    def __iter__(self) -> Iterator[logging.LogRecord]:
        return iter(self.caplog.records)

    def clear(self) -> None:
        self.caplog.clear()


@pytest.fixture
def forwarded(caplog: pytest.LogCaptureFixture) -> Iterator[Forwarded]:
    with caplog.at_level(logging.DEBUG, logger=PROBE_LOG.name):
        yield Forwarded(caplog)


def levels(records: Forwarded) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in records if r.levelno > logging.DEBUG]


def test_a_failure_is_reported_when_it_starts_changes_and_ends(
    forwarded: Forwarded,
) -> None:
    failures = FailureLog()
    for _ in range(4):
        failures.forward(result("kam", "connect", ("xhttp_prom",)))
    assert levels(forwarded) == [
        ("ERROR", "probe failed at stage connect: ECONNREFUSED"),
        ("WARNING", "xhttp_prom: cannot connect"),
    ]
    # The repeats still reach the log, at debug.
    repeats = [r for r in forwarded if "stage connect" in r.getMessage()]
    assert [r.levelname for r in repeats] == ["ERROR", "DEBUG", "DEBUG", "DEBUG"]
    forwarded.clear()
    failures.forward(result("kam", "timeout", ("xhttp_prom",)))  # failing otherwise: reported
    assert levels(forwarded)[0] == ("ERROR", "probe failed at stage timeout: ECONNREFUSED")
    forwarded.clear()
    failures.forward(result("kam", None))
    (recovered,) = levels(forwarded)
    assert recovered[0] == "INFO"
    assert recovered[1].startswith("working again after 5 failed probes in 0s")
    assert recovered[1].endswith("(failed at stage timeout)")
    forwarded.clear()
    failures.forward(result("kam", None))
    assert levels(forwarded) == []


def test_a_source_that_fails_while_kamailio_answers_is_reported_once(
    forwarded: Forwarded,
) -> None:
    failures = FailureLog()
    for _ in range(3):
        failures.forward(result("kam", None, ("rtpengine_metrics",)))
    failures.forward(result("kam", None))
    assert levels(forwarded) == [
        ("WARNING", "rtpengine_metrics: cannot connect"),
        ("INFO", "working again after 3 failed probes in 0s (failed: rtpengine_metrics)"),
    ]


def test_the_failing_targets_kept_are_bounded(forwarded: Forwarded) -> None:
    failures = FailureLog(limit=2)
    for target in ("a", "b", "c", "c", "b"):
        failures.forward(result(target, "connect"))
    # "a" was forgotten first: its next failure is reported again.
    failures.forward(result("a", "connect"))
    reported = [r.target for r in forwarded if r.levelno == logging.ERROR]  # type: ignore[attr-defined]
    assert reported == ["a", "b", "c", "a"]


def test_the_refused_texts_kept_are_bounded(caplog: pytest.LogCaptureFixture) -> None:
    refusals = RefusalLog(limit=2)
    long_text = "x" * 300  # kept and logged by its first 256 characters
    with caplog.at_level(logging.DEBUG, logger="probe_exporter"):
        for target in ("a", "b", "b", "a", "c", "a", "b", long_text, long_text + "y"):
            refusals.report(target, f"{target}: not allowed")
    warned = [r.target for r in caplog.records if r.levelno == logging.WARNING]  # type: ignore[attr-defined]
    # "b" was the oldest when "c" came: its next refusal is reported again.
    assert warned == ["a", "b", "c", "b", long_text[:256]]
    assert len(caplog.records) == 9


def test_long_texts_are_cut_with_a_marker_as_they_are_logged() -> None:
    huge = "\x1b[2J" + "x" * (4 << 20)
    plog = probe_logger("kam", "default", time.monotonic())
    plog.error("collector %s failed: %s", "tm", huge)
    (record,) = plog.capture.records
    assert isinstance(record.args, tuple)
    assert len(str(record.args[1])) < logs.MESSAGE_LIMIT
    (line,) = plog.capture.lines
    assert line.endswith("x... [cut 4.0 MiB]")
    assert "\x1b" not in line
    assert "\\x1b[2J" in line
    assert logs.cut("short") == "short"
    assert logs.cut("y" * 5000, 100) == "y" * 100 + "... [cut 4.8 KiB]"


def test_log_prober_sets_the_level_of_probe_lines_whatever_log_level() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level, PROBE_LOG.level
    try:
        logs.configure("error", "logfmt", "info")
        stream = io.StringIO()
        root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
        logging.getLogger("probe_exporter").info("not shown: below --log.level")
        plog = probe_logger("kam", "default", time.monotonic())
        plog.debug("not shown: below --log.prober")
        plog.info("shown: at --log.prober")
        plog.capture.forward()
        assert stream.getvalue().count("\n") == 1
        assert 'msg="shown: at --log.prober" target=kam module=default' in stream.getvalue()
    finally:
        root.handlers[:], _, _ = saved
        root.setLevel(saved[1])
        PROBE_LOG.setLevel(saved[2])
