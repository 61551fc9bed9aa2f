"""The status page (`/`): each target's state, the last probes and refused requests.

Everything shown that came from a request or a Kamailio is escaped; the page has no script and
loads nothing else (inline CSS), and its links are relative, so that it works behind a path
prefix. It reads the service's bounded state: rendering costs the same however busy the
exporter is.
"""

from __future__ import annotations

import html
import time
import urllib.parse
from collections.abc import Iterable
from typing import TYPE_CHECKING

from . import __version__
from .probe import STAGES
from .status import TargetState

if TYPE_CHECKING:
    from .history import ProbeRecord
    from .service import Exporter

REFUSAL_STATUS = {"forbidden": (403, "not allowed"), "bad_request": (400, "bad request")}
REFUSAL_STATUS_OTHER = (503, "overloaded")

STYLE = """
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,
sans-serif;color:#1f2328;background:#f6f8fa}
header{background:#1f2937;color:#f9fafb;padding:14px 20px}
header h1{margin:0;font-size:1.35em;font-weight:600}
header p{margin:4px 0 0;color:#cbd5e1;font-size:.85em}
nav{margin-top:8px;display:flex;flex-wrap:wrap;gap:4px 16px}
nav a{color:#93c5fd;font-size:.9em}
main{max-width:1280px;margin:0 auto;padding:8px 20px 32px}
h2{font-size:1.1em;margin:28px 0 6px}
p.hint{margin:0 0 10px;color:#57606a;font-size:.85em}
.tiles{display:flex;flex-wrap:wrap;gap:10px;margin-top:16px}
.tile{background:#fff;border:1px solid #d0d7de;border-left-width:5px;border-radius:6px;
padding:8px 14px;min-width:120px}
.tile .n{display:block;font-size:1.6em;font-weight:600;line-height:1.1}
.tile.up{border-left-color:#1a7f37}.tile.down{border-left-color:#cf222e}
.tile.none{border-left-color:#8c959f}.tile.refused{border-left-color:#bf8700}
table{width:100%;border-collapse:collapse;background:#fff;border:1px solid #d0d7de;
border-radius:6px;font-size:.9em}
th,td{padding:7px 10px;text-align:left;vertical-align:top;border-bottom:1px solid #eaeef2}
th{background:#f6f8fa;font-weight:600;color:#57606a;white-space:nowrap}
tr:last-child td{border-bottom:0}
td{overflow-wrap:anywhere}
.sub{color:#57606a;font-size:.85em}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.88em}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:.8em;font-weight:700;
letter-spacing:.03em;white-space:nowrap}
.badge.up{background:#dafbe1;color:#116329}.badge.down{background:#ffebe9;color:#a40e26}
.badge.none{background:#eaeef2;color:#57606a}.badge.refused{background:#fff8c5;color:#7d4e00}
.stage{font-weight:600;color:#a40e26}
time,.nowrap{white-space:nowrap}
.tag{display:inline-block;margin-top:2px;padding:0 6px;border:1px solid #d0d7de;
border-radius:8px;font-size:.75em;color:#57606a}
a{color:#0969da}
.links a{margin-right:10px;white-space:nowrap}
.empty{color:#57606a;font-style:italic}
footer{margin-top:28px;color:#57606a;font-size:.85em}
@media (max-width:760px){
main{padding:4px 10px 24px}
table.cards,table.cards tbody,table.cards tr,table.cards td{display:block;width:100%}
table.cards{border:0;background:none}
table.cards thead{display:none}
table.cards tr{background:#fff;border:1px solid #d0d7de;border-radius:6px;margin:0 0 10px;
padding:4px 0}
table.cards td{display:flex;gap:10px;border:0;padding:4px 12px}
table.cards td::before{content:attr(data-label);flex:0 0 6.5em;color:#57606a;font-weight:600;
font-size:.85em}
table.cards td>div.cell{min-width:0}
table.cards td:has(>div.cell:empty){display:none}
}
"""

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
</head><body>
<header><h1>Kamailio Probe Exporter</h1>
<p>Version {version} · started {started} · page generated {now}</p>
<nav><a href="metrics">Exporter metrics</a><a href="sd">Service discovery</a>
<a href="config">Configuration</a><a href="-/healthy">Health</a><a href="-/ready">Readiness</a>
<a href="#probes">Recent probes</a><a href="#refused">Refused requests</a></nav>
</header>
<main>
<div class="tiles">{tiles}</div>
<h2 id="targets">Targets</h2>
<p class="hint">Each target's last probe by this exporter (down first), then addresses allowed by
a rule and probed recently (the last {ad_hoc_limit}). Logs are kept for the last {history}
probes and as many older failures.</p>
{targets}
<h2 id="probes">Recent probes</h2>
<p class="hint">Newest first, then older failures.</p>
{probes}
<h2 id="refused">Refused requests</h2>
<p class="hint">Probe requests answered with an error instead of a probe, since the start: {counts}.
The last {refusal_limit}, newest first; the target is shown as it was sent.</p>
{refusals}
<h2 id="modules">Modules</h2>
{modules}
<footer><p>Probe a Kamailio with
<code>probe?target=NAME_OR_ADDRESS[&amp;module=M][&amp;debug=true]</code>. A failed probe
answers <code>kamailio_up 0</code> and the stage it failed at: {stages}.</p></footer>
</main>
</body></html>
"""


def landing_page(exporter: Exporter, now: float | None = None) -> str:
    """The status page, as of `now` (time.time())."""
    now = time.time() if now is None else now
    config = exporter.config
    status = exporter.status
    listed: list[tuple[str, str, TargetState | None]] = []
    for target in config.targets.values():
        found: list[tuple[str, str, TargetState | None]] = [
            (target.name, module, state)
            for module in config.modules
            if (state := status.listed(target.name, module)) is not None
        ]
        listed.extend(found or [(target.name, target.module or "default", None)])
    listed.sort(key=lambda row: row[2] is None or row[2].up)  # down first; stable otherwise
    ad_hoc = list(status.ad_hoc())
    states = [state for _, _, state in listed if state is not None] + ad_hoc
    down = sum(not state.up for state in states)
    unknown = sum(state is None for _, _, state in listed)
    refused = sum(status.refusal_counts.values())
    tiles = (
        _tile("up", len(states) - down, "up")
        + _tile("down", down, "down")
        + _tile("none", unknown, "not probed yet")
        + _tile("refused", refused, "refused requests")
    )
    rows = [
        _target_row(name, module, state, str(config.targets[name].address), now)
        for name, module, state in listed
    ]
    rows += [_target_row(s.target, s.module, s, None, now) for s in ad_hoc]
    counts = ", ".join(
        f"{code} {e(text)}: {status.refusal_counts.get(reason, 0)}"
        for reason, (code, text) in [*REFUSAL_STATUS.items(), ("overload", REFUSAL_STATUS_OTHER)]
    )
    return PAGE.format(
        title=f"Kamailio Probe Exporter: {down} down" if down else "Kamailio Probe Exporter",
        style=STYLE,
        version=e(__version__),
        started=_when(exporter.started_at, now),
        now=_utc(now),
        tiles=tiles,
        ad_hoc_limit=status.ad_hoc_limit,
        history=exporter.history.limit,
        targets=_table(
            "target-list",
            ["State", "Target", "Module", "Last probe", "Last success", "Last failure", "Logs"],
            rows,
            "No targets are listed in the config file, and no address was probed yet.",
        ),
        probes=_table(
            "probe-list",
            ["Time", "Target", "Module", "Result", "Duration", "Reason", "Log"],
            [_probe_row(record, now) for record in exporter.history],
            "No probe yet.",
        ),
        counts=counts,
        refusal_limit=status.refusals.maxlen,
        refusals=_table(
            "refusal-list",
            ["Time", "Answer", "Target as sent", "Why"],
            [
                _cells(
                    ("Time", _when(r.at, now)),
                    ("Answer", _refusal_badge(r.reason)),
                    (
                        "Target",
                        "<span class='empty'>none</span>"
                        if r.target is None
                        else f"<code>{e(r.target)}</code>",
                    ),
                    ("Why", e(r.message)),
                )
                for r in reversed(status.refusals)
            ],
            "No request was refused.",
        ),
        modules=_table(
            "module-list",
            ["Module", "Collectors", "Timeout"],
            [
                _cells(
                    ("Module", e(name)),
                    ("Collectors", e(", ".join(module.collectors))),
                    ("Timeout", f"{module.timeout:g} s"),
                )
                for name, module in config.modules.items()
            ],
            "No module.",
        ),
        stages=e(", ".join(STAGES)),
    )


def e(text: str) -> str:
    return html.escape(text, quote=True)


def _utc(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def _age(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _when(at: float, now: float) -> str:
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
    return (
        f'<time datetime="{iso}">{_utc(at)}</time> '
        f'<span class="sub nowrap">({_age(now - at)} ago)</span>'
    )


def _tile(kind: str, count: int, label: str) -> str:
    return f'<div class="tile {kind}"><span class="n">{count}</span>{label}</div>'


def _badge(state: TargetState | None) -> str:
    if state is None:
        return '<span class="badge none">NO DATA</span>'
    return (
        '<span class="badge up">UP</span>' if state.up else '<span class="badge down">DOWN</span>'
    )


def _refusal_badge(reason: str) -> str:
    code, text = REFUSAL_STATUS.get(reason, REFUSAL_STATUS_OTHER)
    return f'<span class="badge refused">{code}</span> <span class="sub nowrap">{e(text)}</span>'


def _log_link(probe_id: int | None, text: str) -> str:
    return "" if probe_id is None else f'<a href="logs?id={probe_id}">{text}</a>'


def _links(links: list[str]) -> str:
    return '<span class="links">' + " ".join(link for link in links if link) + "</span>"


def _cells(*cells: tuple[str, str]) -> str:
    # data-label names the cell where a narrow screen shows each row as a card.
    return (
        "<tr>"
        + "".join(
            f'<td data-label="{label}"><div class="cell">{content}</div></td>'
            for label, content in cells
        )
        + "</tr>"
    )


def _table(table_id: str, headers: list[str], rows: Iterable[str], empty: str) -> str:
    body = "\n".join(rows)
    if not body:
        return f'<p class="empty" id="{table_id}">{empty}</p>'
    head = "".join(f"<th>{h}</th>" for h in headers)
    return (
        f'<table class="cards" id="{table_id}"><thead><tr>{head}</tr></thead><tbody>\n'
        f"{body}\n</tbody></table>"
    )


def _target_row(
    name: str, module: str, state: TargetState | None, address: str | None, now: float
) -> str:
    """A target's row; `address` is a listed target's, None for an address a rule allowed."""
    quoted = urllib.parse.quote(name, safe="")
    # Without a state yet, a listed target is probed with its own module.
    module_param = "" if state is None else f"&amp;module={urllib.parse.quote(module, safe='')}"
    target_cell = f"<strong>{e(name)}</strong>"
    if address is not None:
        target_cell += f'<div class="sub mono">{e(address)}</div>'
    else:
        target_cell += '<div><span class="tag">allowed by a rule</span></div>'
    links = [f'<a href="probe?target={quoted}{module_param}&amp;debug=true">probe now</a>']
    if state is None:
        return _cells(
            ("State", _badge(None)),
            ("Target", target_cell),
            ("Module", e(module)),
            ("Last probe", '<span class="empty">not probed yet</span>'),
            ("Last success", ""),
            ("Last failure", ""),
            ("Logs", _links(links)),
        )
    state_cell = f'{_badge(state)}<div class="sub">for {_age(now - state.since)}</div>'
    took = f'<div class="sub">took {state.last_duration * 1000:.1f} ms</div>'
    last = _when(state.last_at, now) + took
    success = (
        _when(state.last_success_at, now)
        if state.last_success_at is not None
        else '<span class="empty">never</span>'
    )
    if state.last_failure_at is None:
        failure = '<span class="empty">none</span>'
    else:
        failure = (
            f'<span class="stage">{e(state.failure_stage or "")}</span> '
            f"{e(state.failure_reason or '')}"
            f'<div class="sub">{_when(state.last_failure_at, now)}</div>'
        )
    links = [
        _log_link(state.last_probe, "last probe"),
        ""
        if state.failure_probe == state.last_probe
        else _log_link(state.failure_probe, "last failure"),
        *links,
    ]
    return _cells(
        ("State", state_cell),
        ("Target", target_cell),
        ("Module", e(module)),
        ("Last probe", last),
        ("Last success", success),
        ("Last failure", failure),
        ("Logs", _links(links)),
    )


def _probe_row(record: ProbeRecord, now: float) -> str:
    result = (
        '<span class="badge up">SUCCESS</span>'
        if record.success
        else '<span class="badge down">FAILURE</span> '
        f'<span class="stage">{e(record.stage or "")}</span>'
    )
    return _cells(
        ("Time", _when(record.finished_at, now)),
        ("Target", e(record.target)),
        ("Module", e(record.module)),
        ("Result", result),
        ("Duration", f"{record.duration * 1000:.1f} ms"),
        ("Reason", e(record.reason or "")),
        ("Log", _log_link(record.id, "log")),
    )
