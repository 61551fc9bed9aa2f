"""The landing page (`/`): the exporter's targets and modules, and its last probes."""

from __future__ import annotations

import html
import urllib.parse
from typing import TYPE_CHECKING

from . import __version__
from .probe import STAGES

if TYPE_CHECKING:
    from .service import Exporter

LANDING_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Kamailio Probe Exporter</title>
<style>
body {{ font-family: sans-serif }}
table {{ border-collapse: collapse }}
td, th {{ padding: 2px 8px; border-bottom: 1px solid #ddd; text-align: left }}
</style>
</head><body>
<h1>Kamailio Probe Exporter</h1>
<p>Version {version}. Probe a Kamailio with
<code>/probe?target=NAME_OR_ADDRESS[&amp;module=M][&amp;debug=true]</code>;
failure stages: {stages}.</p>
<ul>
<li><a href="metrics">Exporter metrics</a></li>
<li><a href="sd">Service discovery (http_sd)</a></li>
<li><a href="config">Configuration</a></li>
<li><a href="-/healthy">Health</a>, <a href="-/ready">Readiness</a></li>
</ul>
<h2>Modules</h2><p>{modules}</p>
<h2>Targets</h2>
<table><tr><th>Name</th><th>Address</th><th>Module</th><th></th></tr>
{targets}</table>
<h2>Recent probes</h2>
<table><tr><th>Module</th><th>Target</th><th>Result</th><th>Duration</th><th>Debug</th></tr>
{probes}</table>
</body></html>
"""


def landing_page(exporter: Exporter) -> str:
    """The landing page: targets, modules and the last probes with links to their output."""
    config = exporter.config
    e = html.escape
    probes = []
    for record in exporter.history:
        result = (
            "Success" if record.success else f"<strong>Failure</strong> ({e(record.stage or '')})"
        )
        probes.append(
            f"<tr><td>{e(record.module)}</td><td>{e(record.target)}</td><td>{result}</td>"
            f"<td>{record.duration * 1000:.1f} ms</td>"
            f'<td><a href="logs?id={record.id}">Debug</a></td></tr>'
        )
    targets = []
    for t in config.targets.values():
        quoted = urllib.parse.quote(t.name, safe="")
        targets.append(
            f"<tr><td>{e(t.name)}</td><td>{e(str(t.address))}</td>"
            f"<td>{e(t.module or 'default')}</td>"
            f'<td><a href="probe?target={quoted}">Probe</a> '
            f'<a href="probe?target={quoted}&amp;debug=true">Debug</a></td></tr>'
        )
    return LANDING_PAGE.format(
        version=e(__version__),
        stages=e(", ".join(STAGES)),
        modules=", ".join(e(m) for m in config.modules),
        targets="\n".join(targets),
        probes="\n".join(probes),
    )
