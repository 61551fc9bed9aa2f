"""The fuzz checks under hypothesis, with structured inputs and many examples (scripts/fuzz.sh).

    FUZZ_HYPOTHESIS_EXAMPLES=20000 .venv/bin/pytest fuzz/hypothesis_soak.py -q

Where atheris mutates bytes, these build inputs from the grammar of each format (valid packets
then damaged, address-shaped strings, TOML documents from the config's own keys), so they reach
the deep checks of the parsers more often. Not part of the test suite: it runs for minutes.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fuzz_oracles import (
    check_address,
    check_body,
    check_config,
    check_decoder,
    check_target,
)

from probe_exporter.binrpc.codec import (
    Struct,
    Value,
    encode_fault,
    encode_reply,
    encode_request,
)

EXAMPLES = int(os.environ.get("FUZZ_HYPOTHESIS_EXAMPLES", "20000"))
SOAK = settings(
    max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)

# -- BINRPC ------------------------------------------------------------------------------------

scalars = st.one_of(
    st.integers(-(2**31), 2**31 - 1),
    st.integers(-(2**63), 2**63 - 1).map(lambda k: k / 1000),
    st.text(max_size=40),
    st.binary(max_size=40),
)


def containers(children: st.SearchStrategy[Value]) -> st.SearchStrategy[Value]:
    members = st.lists(st.tuples(st.none() | st.text(max_size=12), children), max_size=5)
    return st.one_of(members.map(Struct), st.lists(children, max_size=5))


values = st.recursive(scalars, containers, max_leaves=30)
cookies = st.integers(0, 2**32 - 1)
packets = st.one_of(
    st.builds(lambda v, c: _encodable_reply(v, c), st.lists(values, max_size=4), cookies),
    st.builds(
        lambda c, m, k: encode_fault(c, m, k),
        st.integers(-(2**31), 2**31 - 1),
        st.text(max_size=300),
        cookies,
    ),
    st.builds(
        lambda m, p, k: encode_request(m, p, k),
        st.text(max_size=30),
        st.lists(st.integers(-(2**31), 2**31 - 1) | st.text(max_size=20), max_size=4),
        cookies,
    ),
)


def _encodable_reply(reply_values: list[Value], cookie: int) -> bytes:
    try:
        return encode_reply(reply_values, cookie)
    except ValueError:  # a DOUBLE outside the 64-bit fixed point
        return encode_reply([], cookie)


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    """One to three packets in a row, then a few byte-level injuries."""
    stream = bytearray(b"".join(draw(st.lists(packets, min_size=1, max_size=3))))
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(("flip", "set", "cut", "insert", "delete")))
        at = draw(st.integers(0, max(len(stream) - 1, 0)))
        if kind == "flip" and stream:
            stream[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and stream:
            stream[at] = draw(st.sampled_from((0x00, 0x7F, 0x80, 0xFF, 0x83, 0x84, 0x95, 0xA1)))
        elif kind == "cut":
            del stream[at:]
        elif kind == "insert":
            stream[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del stream[at : at + draw(st.integers(1, 8))]
    return bytes(stream)


@SOAK
@given(st.binary(min_size=4, max_size=4), damaged())
def test_decoder_on_damaged_packets(cuts: bytes, stream: bytes) -> None:
    check_decoder(cuts + stream)


@SOAK
@given(st.binary(max_size=2000))
def test_decoder_on_random_bodies(body: bytes) -> None:
    check_body(body)


# -- addresses and targets ---------------------------------------------------------------------

PIECES = (
    "tcp:",
    "udp:",
    "unix:",
    "unixs:",
    "unixd:",
    "TCP:",
    "[",
    "]",
    ":",
    "/",
    "::",
    "::ffff:",
    "fd00::",
    "10.20.",
    "10.30.0.",
    "127.0.0.1",
    "0x7f",
    ".",
    "..",
    "%",
    "%3A",
    "%252e",
    "*",
    "a",
    "kam",
    ".kam.test",
    "none.",
    "-",
    "_",
    "2046",
    "0",
    "65536",
    "run/kamailio/",
    "ctl",
    ".sock",
    " ",
    "\t",
    "\x00",
    "é",
    "\x01",
    "fast",
    "listed",
)
address_like = st.one_of(
    st.lists(st.sampled_from(PIECES), max_size=12).map("".join),
    st.text(alphabet=st.sampled_from("tcpudnix:/[].%0123456789abcdef*-_ \x00é"), max_size=60),
    st.text(max_size=400),
)


@SOAK
@given(address_like)
def test_address_parser(text: str) -> None:
    check_address(text.encode("utf-8", "surrogatepass"))


@SOAK
@given(address_like)
def test_targets_against_allow_rules(text: str) -> None:
    check_target(text.encode("utf-8", "surrogatepass"))


# -- targets.toml ------------------------------------------------------------------------------

toml_values = st.one_of(
    st.integers(-(2**63), 2**63 - 1).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(
        lambda f: {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(str(f), repr(f))
    ),
    st.booleans().map(lambda b: "true" if b else "false"),
    address_like.map(lambda s: '"' + s.encode("unicode_escape").decode().replace('"', '\\"') + '"'),
    st.sampled_from(
        (
            '"all"',
            '["all"]',
            '["stats", "pkg"]',
            "[]",
            "{}",
            '{ site = "x" }',
            '{ "1" = "a" }',
            '"http://u:p@127.0.0.1:1/m"',
            "1979-05-27",
            "[[1], [2]]",
            '["stats", "stats"]',
            '"default"',
            '"fast"',
        )
    ),
)
KEYS = (
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
    "unknown",
)
SECTIONS = (
    "[pool]",
    "[modules.default]",
    "[modules.fast]",
    '[modules."a b"]',
    "[[targets]]",
    "[[allow]]",
    "[modules]",
    "[targets]",
)


@st.composite
def toml_documents(draw: st.DrawFn) -> str:
    lines: list[str] = []
    for _ in range(draw(st.integers(0, 6))):
        lines.append(draw(st.sampled_from(SECTIONS)))
        for _ in range(draw(st.integers(0, 5))):
            lines.append(f"{draw(st.sampled_from(KEYS))} = {draw(toml_values)}")
    return "\n".join(lines) + "\n"


@SOAK
@given(toml_documents())
def test_config_parser(text: str) -> None:
    check_config(text.encode("utf-8", "surrogatepass"))
