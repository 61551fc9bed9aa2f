"""parse_address / Address: Kamailio's address syntax, canonical form, clear errors."""

from __future__ import annotations

import pytest

from probe_exporter.binrpc.address import (
    DEFAULT_PORT,
    MAX_ADDRESS_LENGTH,
    Address,
    AddressError,
    has_protocol,
    parse_address,
)

VALID = [
    # text, expected address, canonical form
    ("tcp:127.0.0.1:2046", Address("tcp", "127.0.0.1", 2046), "tcp:127.0.0.1:2046"),
    ("tcp:127.0.0.1", Address("tcp", "127.0.0.1", DEFAULT_PORT), "tcp:127.0.0.1:2049"),
    ("TCP:Kamailio-1.Example.NET:1", Address("tcp", "kamailio-1.example.net", 1),
     "tcp:kamailio-1.example.net:1"),
    ("tcp:localhost:65535", Address("tcp", "localhost", 65535), "tcp:localhost:65535"),
    ("udp:127.0.0.1:2047", Address("udp", "127.0.0.1", 2047), "udp:127.0.0.1:2047"),
    ("Udp:10.0.0.1", Address("udp", "10.0.0.1", 2049), "udp:10.0.0.1:2049"),
    ("unix:/run/kamailio/kamailio_ctl", Address("unix", path="/run/kamailio/kamailio_ctl"), None),
    ("unixs:/run/kamailio/kamailio_ctl", Address("unix", path="/run/kamailio/kamailio_ctl"),
     "unix:/run/kamailio/kamailio_ctl"),
    ("UNIXS:/tmp/ctl", Address("unix", path="/tmp/ctl"), "unix:/tmp/ctl"),
    ("unixd:/run/kamailio/ctl_dgram", Address("unixd", path="/run/kamailio/ctl_dgram"), None),
    ("/var/run/kamailio/kamailio_ctl", Address("unix", path="/var/run/kamailio/kamailio_ctl"),
     "unix:/var/run/kamailio/kamailio_ctl"),
    ("unix:/" + "a" * 106, Address("unix", path="/" + "a" * 106), None),
    ("127.0.0.1:2046", Address("udp", "127.0.0.1", 2046), "udp:127.0.0.1:2046"),
    ("kamailio.local", Address("udp", "kamailio.local", 2049), "udp:kamailio.local:2049"),
    ("tcp:[::1]:2046", Address("tcp", "::1", 2046), "tcp:[::1]:2046"),
    ("tcp:[::1]", Address("tcp", "::1", 2049), "tcp:[::1]:2049"),
    ("tcp:[2001:DB8:0:0::1]:5", Address("tcp", "2001:db8::1", 5), "tcp:[2001:db8::1]:5"),
    ("[::1]:2047", Address("udp", "::1", 2047), "udp:[::1]:2047"),
    ("udp:[fe80::1%eth0]:9", Address("udp", "fe80::1%eth0", 9), "udp:[fe80::1%eth0]:9"),
]  # fmt: skip

INVALID = [
    # text, fragment of the error message
    ("", "empty address"),
    ("x" * (MAX_ADDRESS_LENGTH + 1), "address too long"),
    ("tcp:", "missing host"),
    ("tcp::2046", "missing host"),
    ("tcp:host:", "missing port"),
    ("tcp:host:http", "bad port 'http'"),
    ("tcp:host:-1", "bad port '-1'"),
    ("tcp:host:2o46", "bad port"),
    ("tcp:host:0", "out of range"),
    ("tcp:host:65536", "out of range"),
    ("tcp:host:99999999999", "out of range"),
    ("tcp:2046", "not a host"),
    ("tcp:*:2046", "listen wildcard"),
    ("tcp:ho$t:1", "bad host"),
    ("tcp:" + "h" * 254 + ":1", "host name too long"),
    ("sctp:127.0.0.1:2049", "unknown protocol 'sctp'"),
    ("tls:host", "unknown protocol 'tls'"),
    ("http://127.0.0.1:2049", "unknown protocol 'http'"),
    ("fifo:/run/kamailio/kamailio_fifo", "unknown protocol 'fifo'"),
    ("unix:", "missing unix socket path"),
    ("unix:run/kamailio_ctl", "must be absolute"),
    ("unixd:kamailio_ctl", "must be absolute"),
    ("run/kamailio/kamailio_ctl", "must be absolute"),
    ("unix:/" + "a" * 107, "path too long: 108 bytes"),
    ("unix:/" + "é" * 54, "path too long: 109 bytes"),
    ("unix:/run/ctl\x00", "NUL byte"),
    ("tcp:127.0.0.1\x00:2046", "NUL byte"),
    ("tcp:127.0.0.1: 2046", "whitespace"),
    (" tcp:127.0.0.1:2046", "whitespace"),
    ("unix:/run/my ctl", "whitespace"),
    ("tcp:127.0.0.1:2046\n", "whitespace"),
    ("tcp:::1:2046", "need brackets"),
    ("::1", "need brackets"),
    ("tcp:[::1", "missing ']'"),
    ("tcp:[::1]2046", "expected ':PORT'"),
    ("tcp:[not-v6]:2046", "bad IPv6 literal"),
    ("tcp:[]:2046", "bad IPv6 literal"),
    ("tcp:[::1]:", "missing port"),
]


@pytest.mark.parametrize(("text", "expected", "canonical"), VALID)
def test_parses_kamailio_syntax(text: str, expected: Address, canonical: str | None) -> None:
    address = parse_address(text)
    assert address == expected
    assert str(address) == (canonical or text)


@pytest.mark.parametrize(("text", "expected", "canonical"), VALID)
def test_canonical_form_round_trips(text: str, expected: Address, canonical: str | None) -> None:
    address = parse_address(text)
    assert parse_address(str(address)) == address
    assert str(parse_address(str(address))) == str(address)


@pytest.mark.parametrize(("text", "message"), INVALID)
def test_rejects_bad_input_with_clear_message(text: str, message: str) -> None:
    with pytest.raises(AddressError) as raised:
        parse_address(text)
    assert message in str(raised.value)


def test_address_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="empty address"):
        parse_address("")


def test_rejects_non_string() -> None:
    with pytest.raises(AddressError, match="must be a string"):
        parse_address(2049)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "is_stream"),
    [("tcp:h:1", True), ("unix:/p", True), ("unixs:/p", True), ("udp:h:1", False),
     ("unixd:/p", False), ("h:1", False), ("/p", True)],
)  # fmt: skip
def test_is_stream(text: str, is_stream: bool) -> None:
    assert parse_address(text).is_stream is is_stream


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"transport": "tcp", "host": "h"}, "needs a host and a port"),
        ({"transport": "udp", "port": 1}, "needs a host and a port"),
        ({"transport": "tcp", "host": "h", "port": 1, "path": "/p"}, "no path"),
        ({"transport": "tcp", "host": "h", "port": 70000}, "out of range"),
        ({"transport": "unix"}, "needs a path"),
        ({"transport": "unixd", "path": "/p", "port": 1}, "no host or port"),
        ({"transport": "sctp", "host": "h", "port": 1}, "unknown transport"),
    ],
)
def test_direct_construction_is_checked(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(AddressError, match=message):
        Address(**kwargs)  # type: ignore[arg-type]


def test_addresses_are_hashable_and_equal_by_value() -> None:
    spellings = {parse_address(t) for t in ("tcp:LOCALHOST:2049", "tcp:localhost", "Tcp:localhost")}
    assert spellings == {Address("tcp", "localhost", 2049)}


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("tcp://10.0.0.1:2046", "tcp:10.0.0.1:2046"),
        ("UDP://kamailio:2049", "UDP:kamailio:2049"),
        ("tcp://[::1]:2046", "tcp:[::1]:2046"),
    ],
)
def test_the_url_form_of_older_exporters_says_what_to_write(text: str, written: str) -> None:
    with pytest.raises(AddressError) as caught:
        parse_address(text)
    assert str(caught.value) == (
        f"{text!r} is written as a URL: write {written} (no '//'), as Kamailio's ctl module does"
    )


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("tcp:h:1", True),
        ("UNIXS:/run/ctl", True),
        ("unixd:/run/ctl", True),
        ("/run/ctl", True),  # a path: unix stream, as Kamailio reads it
        ("127.0.0.1:2046", False),
        ("kamailio", False),
        ("[::1]:2046", False),
    ],
)
def test_has_protocol(text: str, named: bool) -> None:
    assert has_protocol(text) is named
