"""Seed inputs and dictionaries for each fuzz target, written into a corpus directory.

The decoder starts from the real captures in tests/fixtures/captures (request and reply bytes of
a real Kamailio); the parsers from the forms the tests and the example targets.toml use.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fuzz_oracles import ALLOW_RULES  # noqa: E402

from probe_exporter.binrpc.codec import (  # noqa: E402
    Struct,
    encode_fault,
    encode_reply,
    encode_request,
)

CAPTURES = ROOT / "tests" / "fixtures" / "captures"
REGRESSIONS = ROOT / "tests" / "regressions"

ADDRESSES = [
    "tcp:127.0.0.1:2046",
    "tcp:127.0.0.1",
    "udp:10.0.0.1:2047",
    "tcp:[::1]:2046",
    "tcp:[fd00::1]",
    "unix:/run/kamailio/kamailio_ctl",
    "unixs:/tmp/ctl",
    "unixd:/tmp/dgram",
    "/run/kamailio/ctl",
    "10.0.0.5:2049",
    "kamailio.example:2046",
    "TCP:Host.Example:65535",
    "tcp:[::ffff:10.20.0.1]:2046",
    "tcp:localhost:0",
    "tcp:*:2046",
    "ftp:1.2.3.4:21",
    "tcp:[fe80::1%eth0]:2046",
]

TARGETS = [
    "listed",
    "tcp:10.20.3.4:2046",
    "tcp:[fd00::1]:2046",
    "tcp:[::ffff:10.20.0.9]:2046",
    "tcp:a.kam.test:2046",
    "tcp:A.KAM.TEST:2046",
    "tcp:none.kam.test:2046",
    "tcp:x.y.kam.test:2046",
    "tcp:other.example:2046",
    "udp:10.30.0.7:9",
    "udp:name.example:2047",
    "unix:/run/kamailio/kamailio_ctl",
    "unix:/run/kamailio/../x",
    "unix:/run/kamailio/./x",
    "unixd:/run/kamailio/ctl.sock",
    "/run/kamailio/ctl",
    "tcp%3A10.20.0.1%3A2046",
    "tcp:0x0a140001:2046",
    "tcp:10.20.1:2046",
    "tcp:10.20.0.1:2046\x01fast",
    "tcp:10.20.0.1:2046\x01nope",
    "listed\x01fast",
]

CONFIGS = [
    ALLOW_RULES,
    "",
    "[pool]\nidle_ttl = 1.5\nmax_connections = 4\nper_target = 2\n",
    '[modules.light]\ncollectors = ["stats", "pkg"]\ntimeout = 2.0\n'
    'dialog_profiles = ["a"]\ndispatcher_set_names = { "1" = "carriers" }\n',
    '[[targets]]\nname = "a"\naddress = "tcp:127.0.0.1:2046"\nlabels = { site = "x" }\n'
    'xhttp_prom_url = "http://user:pw@127.0.0.1:8080/metrics"\n',
    '[[allow]]\naddress = "tcp:[fd00::/64]:*"\n[[allow]]\naddress = "unix:/run/*/ctl"\n',
]

DICTIONARIES = {
    # header (magic, type and sizes), struct/array start and end, AVP and STR length forms
    "decoder": [
        "\xa1\x10",
        "\xa1\x30",
        "\xa1\x0f",
        "\x03",
        "\x83",
        "\x04",
        "\x84",
        "\x95",
        "\x91",
        "\x85",
        "\x81",
        "\x86",
        "\x80\xff\xff\xff\xff",
        "\x82",
        "\x40",
        "\x42",
        "\x82\x7f\xff\xff\xff\xff\xff\xff\xff",
    ],
    "address": [
        "tcp:",
        "udp:",
        "unix:",
        "unixs:",
        "unixd:",
        "[",
        "]",
        ":",
        "/",
        "::ffff:",
        "..",
        "%",
        "127.0.0.1",
        "2046",
        "65535",
        "65536",
        "*",
    ],
    "target": [
        "tcp:",
        "udp:",
        "unix:",
        "unixd:",
        "unixs:",
        "[",
        "]",
        ":",
        "/",
        "::ffff:",
        "..",
        ".",
        "%25",
        "%3A",
        "%2e",
        ".kam.test",
        "10.20.",
        "10.30.0.",
        "fd00::",
        "/run/kamailio/",
        ".sock",
        "\x01",
        "2046",
        "none.",
        "listed",
        "fast",
    ],
    "config": [
        "[pool]",
        "[modules.",
        "[[targets]]",
        "[[allow]]",
        "idle_ttl",
        "max_connections",
        "per_target",
        "collectors",
        "timeout",
        "name",
        "address",
        "module",
        "labels",
        "xhttp_prom_url",
        "rtpengine_metrics_url",
        "dialog_profiles",
        "dispatcher_set_names",
        "stats_groups",
        '"all"',
        '"stats"',
        " = ",
        "{",
        "}",
        "[",
        "]",
        '"tcp:10.0.0.0/8:*"',
        '"unix:/run/*"',
        "inf",
        "nan",
        "1e400",
        '"""',
        "'''",
        "\\u0000",
        "1979-05-27T07:32:00Z",
        "true",
    ],
}


def _decoder_seeds() -> list[bytes]:
    streams = [path.read_bytes() for path in sorted(CAPTURES.glob("*.bin"))]
    streams += [
        encode_request("stats.fetch", ["all"], 7),
        encode_reply([Struct([("a", 1), (None, "x"), ("d", 1.5)]), [1, [2, b"\x00"]]], 9),
        encode_fault(500, "Internal error", 3),
        encode_reply([-1, 2**31 - 1, -2.5, "é" * 9], 0xFFFFFFFF),
    ]
    # The first 4 bytes choose the packet limit and where the stream is cut.
    return [
        prefix + stream
        for stream in streams
        for prefix in (b"\x00\x00\x00\x00", b"\x01\x20\x80\xe0")
    ]


def seeds(target: str) -> list[bytes]:
    if target == "decoder":
        found = _decoder_seeds()
    elif target == "address":
        found = [a.encode() for a in ADDRESSES + TARGETS]
    elif target == "target":
        found = [t.encode() for t in TARGETS + ADDRESSES]
    elif target == "config":
        found = [c.encode() for c in CONFIGS] + [(ROOT / "targets.toml").read_bytes()]
    else:
        raise SystemExit(f"unknown fuzz target {target!r}")
    saved = REGRESSIONS / target
    if saved.is_dir():
        found += [path.read_bytes() for path in sorted(saved.iterdir()) if path.is_file()]
    return found


def write(target: str, corpus: Path, dictionary: Path) -> int:
    """Adds the seeds to `corpus` (named by content, so a rerun adds nothing twice) and writes
    the libFuzzer dictionary; returns the number of seeds."""
    corpus.mkdir(parents=True, exist_ok=True)
    found = seeds(target)
    for data in found:
        (corpus / hashlib.sha1(data).hexdigest()).write_bytes(data)
    tokens = DICTIONARIES.get(target, [])
    dictionary.write_text("".join(f'"{_escape(token)}"\n' for token in tokens))
    return len(found)


def _escape(token: str) -> str:
    return "".join(
        ch if 32 <= ord(ch) < 127 and ch not in '"\\' else f"\\x{ord(ch):02x}" for ch in token
    )


if __name__ == "__main__":
    name, corpus_dir, dictionary_file = sys.argv[1:4]
    print(write(name, Path(corpus_dir), Path(dictionary_file)))
