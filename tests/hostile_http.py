"""An HTTP source (as xhttp_prom or rtpengine's /metrics would be) serving adversarial
expositions, for tests that merge them: names that shadow the exporter's, repeated series,
invalid names and values, bad escapes, OpenMetrics-only syntax, types that do not match their
samples, broken histograms.

HostileHttpSource serves `PAGES` (or any pages given) on a free 127.0.0.1 port from its own
event loop in a background thread, so that an exporter process can fetch them while a test
runs; stop() ends it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping

from aiohttp import web

# name -> the body served at /name
PAGES: dict[str, str] = {
    # names the exporter emits or reserves, whether or not the probe's collectors ran
    "shadow": (
        "kamailio_up 1\n"
        "# TYPE kamailio_probe_duration_seconds gauge\nkamailio_probe_duration_seconds 0\n"
        'kamailio_exporter_collector_success{collector="stats"} 1\n'
        'kamailio_exporter_merged_duplicates{source="xhttp_prom"} 0\n'
        'kamailio_pkgmem_used{entry="0"} 5\n'
        "kamailio_dialog_expired_dialogs 3\n"  # kamailio_dialog_expired_dialogs_total's OM name
        "kamailio_bad_msg_hdr_created 1\n"
        "kamailio_stats_core_anything_total 1\n"
        "kamailio_tm_stats_current 9\n"
        "kept_by_source 1\n"
    ),
    # `m{a=""}` is `m`; a series that repeats, interleaved
    "duplicates": (
        'm{a=""} 1\nm 2\nm{a="1"} 3\nother 1\nm{a="1"} 4\n'
        '# TYPE c_total counter\nc_total{x="1"} 1\nc_total{x="1"} 2\n'
    ),
    "huge_values": (
        "big 1e400\nnan NaN\ninf +Inf\nminus_inf -Inf\n"
        "long_int " + "9" * 400 + "\n"
        "# TYPE neg_total counter\nneg_total -1\n"
        "# TYPE nan_total counter\nnan_total NaN\n"
        "# TYPE good_total counter\ngood_total 5\n"
    ),
    "bad_escapes": (
        'esc{a="\\q"} 1\nesc{a="tab\there"} 2\nesc{a="new\\nline"} 3\n'
        'esc{a="quote\\"d"} 4\nesc{a="back\\\\slash"} 5\n'
        '# HELP helped A HELP with a \\ backslash, a \\n newline and a " quote\nhelped 1\n'
    ),
    "openmetrics_syntax": (
        "# TYPE om counter\n# UNIT om seconds\nom_total 1\nom_created 1700000000\n"
        "# EOF\n"
        "after_eof 1\n"
    ),
    "type_mismatch": (
        "# TYPE h histogram\nh 1\n"
        "# TYPE s summary\ns_bucket 1\n"
        "# TYPE g gauge\ng_total 1\n"
        "# TYPE c counter\nc_total 1\nc 2\n"
        "# TYPE u untyped\nu_count 1\n"
        "# TYPE x gauge\n# TYPE x counter\nx 1\n"
    ),
    "histograms": (
        "# TYPE fine histogram\n"
        'fine_bucket{op="a",le="0.5"} 1\nfine_bucket{op="b",le="+Inf"} 1\n'
        'fine_bucket{op="a",le="+Inf"} 2\nfine_sum{op="a"} 1\nfine_count{op="a"} 2\n'
        'fine_sum{op="b"} 1\nfine_count{op="b"} 1\n'
        "# TYPE no_inf histogram\n"
        'no_inf_bucket{le="1"} 1\nno_inf_sum 1\nno_inf_count 1\n'
        "# TYPE decreasing histogram\n"
        'decreasing_bucket{le="1"} 5\ndecreasing_bucket{le="+Inf"} 2\n'
        "decreasing_sum 1\ndecreasing_count 2\n"
        "# TYPE mismatch histogram\n"
        'mismatch_bucket{le="+Inf"} 2\nmismatch_sum 1\nmismatch_count 3\n'
        "# TYPE fraction histogram\n"
        'fraction_bucket{le="+Inf"} 1.5\nfraction_sum 1\nfraction_count 1.5\n'
        "# TYPE quantiles summary\n"
        'quantiles{quantile="0.5"} 1\nquantiles{quantile="7"} 2\nquantiles_sum 1\n'
        "quantiles_count 1\n"
        "fine_created 5\n"  # the histogram's _created in OpenMetrics
    ),
    # rtpengine's clash in OpenMetrics only, and a counter without _total
    "openmetrics_clash": (
        "# TYPE sessions gauge\nsessions 2\n"
        "# TYPE sessions_total counter\nsessions_total 9\n"
        "# TYPE packets_lost counter\npackets_lost 7\n"
        "untyped_first 1\n"
        "# TYPE untyped_first_total counter\nuntyped_first_total 1\n"
    ),
    "invalid_name": "ok 1\n9starts_with_a_digit 1\n",
    "invalid_label": 'ok 1\nm{__reserved="x"} 1\n',
    "not_metrics": "<html><body>Not found</body></html>\n",
    "binary": "\x00\x01\x02 garbage \ufffd\n",
    # served as both sources of one target: the second source's series are the first's
    "same": "same_metric 1\n# TYPE same_counter_total counter\nsame_counter_total 2\n",
}


class HostileHttpSource:
    """Serves pages on 127.0.0.1 from a private event loop in a thread."""

    def __init__(self, pages: Mapping[str, str] = PAGES) -> None:
        self.pages = dict(pages)
        self.requests = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="hostile-http", daemon=True
        )
        self._thread.start()
        self._runner: web.AppRunner | None = None
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    def url(self, page: str) -> str:
        return f"http://127.0.0.1:{self.port}/{page}"

    async def _page(self, request: web.Request) -> web.Response:
        self.requests += 1
        body = self.pages.get(request.match_info["page"])
        if body is None:
            raise web.HTTPNotFound()
        return web.Response(body=body.encode(), content_type="text/plain")

    async def _start(self) -> int:
        app = web.Application()
        app.router.add_get("/{page}", self._page)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port: int = self._runner.addresses[0][1]
        return port

    def stop(self) -> None:
        async def stop() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        try:
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5.0)
            if not self._thread.is_alive():
                self._loop.close()
