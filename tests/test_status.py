"""The status page's state (probe_exporter.status) and its rendering, without Kamailio: each
target's last result, its bounds, refusals, reloads; times and ages as of a given moment; every
text from a request escaped. tests/test_status_page.py reads the page in a real browser."""

from __future__ import annotations

import html
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kamailio_harness import free_ports

from probe_exporter.landing import landing_page
from probe_exporter.service import Exporter, Settings
from probe_exporter.status import TEXT_LIMIT, StatusBoard

T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


def ended(board: StatusBoard, target: str, success: bool, at: float, **kw: object) -> None:
    fields: dict[str, object] = {
        "listed": True,
        "success": success,
        "stage": None if success else "connect",
        "reason": None if success else "ECONNREFUSED",
        "duration": 0.01,
        "probe_id": int(at),
        "at": at,
    }
    fields.update(kw)
    board.probe_ended(target, "default", **fields)  # type: ignore[arg-type]


def test_a_target_keeps_its_last_failure_and_when_it_changed() -> None:
    board = StatusBoard()
    ended(board, "sbc", True, T0)
    ended(board, "sbc", True, T0 + 10)
    state = board.listed("sbc", "default")
    assert state is not None
    assert (state.up, state.since, state.last_success_at, state.last_failure_at) == (
        True,
        T0,
        T0 + 10,
        None,
    )
    ended(board, "sbc", False, T0 + 20, reason="x" * 5000)
    ended(board, "sbc", False, T0 + 30)
    assert (state.up, state.since, state.last_at) == (False, T0 + 20, T0 + 30)
    ended(board, "sbc", True, T0 + 40)
    # Up again: the last failure stays, with its stage, reason and probe.
    assert (state.up, state.since, state.last_success_at) == (True, T0 + 40, T0 + 40)
    assert (state.last_failure_at, state.failure_stage, state.failure_probe) == (
        T0 + 30,
        "connect",
        int(T0 + 30),
    )
    assert state.failure_reason == "ECONNREFUSED"
    ended(board, "sbc", False, T0 + 50, reason="y" * 5000)
    assert state.failure_reason is not None
    assert len(state.failure_reason) == TEXT_LIMIT
    assert state.failure_reason.endswith("…")


def test_ad_hoc_addresses_are_bounded_and_listed_targets_are_not_evicted() -> None:
    board = StatusBoard(ad_hoc_limit=10)
    ended(board, "listed", True, T0)
    for i in range(1000):
        ended(board, f"tcp:10.0.{i // 256}.{i % 256}:2046", i % 2 == 0, T0 + i, listed=False)
    ad_hoc = [state.target for state in board.ad_hoc()]
    assert ad_hoc == [f"tcp:10.0.3.{i % 256}:2046" for i in range(999, 989, -1)]
    assert board.listed("listed", "default") is not None
    # A probe moves its address to the front, and evicts nothing.
    ended(board, "tcp:10.0.3.224:2046", True, T0 + 2000, listed=False)
    assert next(board.ad_hoc()).target == "tcp:10.0.3.224:2046"
    assert len(list(board.ad_hoc())) == 10


def test_refusals_are_counted_and_the_last_ones_kept_cut() -> None:
    board = StatusBoard(refusals_limit=3)
    for i in range(50):
        board.refused("forbidden", f"t{i}" + "z" * 1000, "not allowed", T0 + i)
    board.refused("bad_request", None, "'target' parameter is missing", T0 + 60)
    assert board.refusal_counts == {"forbidden": 50, "bad_request": 1}
    assert [r.target and r.target[:3] for r in board.refusals] == ["t48", "t49", None]
    assert all(len(r.target or "") <= TEXT_LIMIT for r in board.refusals)


def test_a_reload_forgets_what_it_no_longer_lists() -> None:
    board = StatusBoard()
    ended(board, "kept", True, T0)
    ended(board, "gone", True, T0)
    ended(board, "tcp:10.0.0.1:2046", True, T0, listed=False)
    ended(board, "tcp:10.0.0.2:2046", True, T0, listed=False)
    board.keep({"kept", "tcp:10.0.0.2:2046"}, {"default"})
    assert board.listed("kept", "default") is not None
    assert board.listed("gone", "default") is None
    assert [s.target for s in board.ad_hoc()] == ["tcp:10.0.0.1:2046"]  # the other is listed now
    board.keep({"kept"}, {"other"})
    assert board.listed("kept", "default") is None
    assert list(board.ad_hoc()) == []


# -- the page, from a running service -------------------------------------------------------------


@pytest.fixture
async def exporter(tmp_path: Path) -> AsyncIterator[Exporter]:
    (closed,) = free_ports("tcp")  # nothing listens there: connecting is refused at once
    config = tmp_path / "targets.toml"
    config.write_text(f"""
[modules.default]
collectors = ["core"]
timeout = 2.0

[[targets]]
name = "sbc-1"
address = "tcp:127.0.0.1:{closed}"

[[targets]]
name = "sbc-2"
address = "tcp:127.0.0.1:{closed}"

[[allow]]
address = "tcp:127.0.0.0/8:{closed}"
""")
    service = await Exporter.start(Settings(str(config), history_limit=5))
    service.status.ad_hoc_limit = 2
    try:
        yield service
    finally:
        await service.stop()


def _section(page: str, section: str) -> str:
    start = page.index(f'<h2 id="{section}">')
    end = page.find("<h2 ", start + 1)
    return page[start : end if end > 0 else len(page)]


async def test_page_shows_states_times_ages_and_escaped_text(exporter: Exporter) -> None:
    closed = exporter.config.targets["sbc-2"].address.port
    await exporter.probe("sbc-1", None, None, False)
    for last in (2, 3, 4):  # three ad-hoc addresses, two kept
        await exporter.probe(f"tcp:127.0.0.{last}:{closed}", None, None, False)
    refused = await exporter.probe('"><img src=x onerror=alert(1)>', None, None, False)
    assert refused.refused == "forbidden"
    state = exporter.status.listed("sbc-1", "default")
    assert state is not None
    page = landing_page(exporter, now=state.last_at + 125)

    targets = _section(page, "targets")
    rows = targets.split("<tr>")[2:]  # after the header row
    assert len(rows) == 4  # two listed, two of three ad-hoc addresses
    assert "<strong>sbc-1</strong>" in rows[0]
    assert '<span class="badge down">DOWN</span><div class="sub">for 2 min</div>' in rows[0]
    when = re.escape(html.escape(_utc(state.last_at)))
    assert re.search(rf"<time datetime=\"[0-9T:-]+Z\">{when}</time> .*\(2 min ago\)", rows[0])
    assert '<span class="stage">connect</span> ' in rows[0]
    assert "ECONNREFUSED (Connection refused)" in rows[0]
    assert f'href="logs?id={state.last_probe}"' in rows[0]
    assert 'href="probe?target=sbc-1&amp;module=default&amp;debug=true"' in rows[0]
    assert "NO DATA" in rows[1]
    assert "sbc-2" in rows[1]
    assert f"tcp:127.0.0.4:{closed}" in rows[2]  # the most recent first
    assert f"tcp:127.0.0.3:{closed}" in rows[3]
    assert "127.0.0.2" not in targets

    probes = _section(page, "probes").split("<tr>")[2:]
    assert len(probes) == 4
    assert "ECONNREFUSED" in probes[0]

    refusals = _section(page, "refused")
    assert "403 not allowed: 1, 400 bad request: 0, 503 overloaded: 0" in refusals
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in refusals
    assert "<img" not in page
    assert "<script" not in page
    assert "<title>Kamailio Probe Exporter: 3 down</title>" in page
    # Relative links only: the page works behind a path prefix.
    assert not re.search(r'href="/', page)
    assert 'href="metrics"' in page


def _utc(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))
