"""targets.toml: parsing, strict validation with key paths, allow rules and target resolution."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import os
import re
import socket
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from probe_exporter import config as config_module
from probe_exporter.binrpc.address import Address
from probe_exporter.collectors import COLLECTORS
from probe_exporter.config import (
    Config,
    ConfigError,
    TargetRejected,
    TargetResolveError,
    UnknownModule,
    load_config,
    parse_config,
    resolve_target,
)

pytestmark = pytest.mark.timeout(30)

REPO = Path(__file__).resolve().parents[1]
SOME_COLLECTOR = sorted(COLLECTORS)[0]

FULL = f"""
[pool]
idle_ttl = 120
max_connections = 64
per_target = 2

[modules.default]
collectors = ["all"]
timeout = 4.5

[modules.light]
collectors = ["{SOME_COLLECTOR}"]
timeout = 2
dialog_profiles = ["inbound", "outbound"]
dispatcher_set_names = {{ "1" = "carriers", "20" = "media" }}

[[targets]]
name = "sbc-fra-1"
address = "tcp:10.0.0.5:2046"
module = "light"
timeout = 3.0
labels = {{ site = "fra", role = "sbc" }}
xhttp_prom_url = "http://10.0.0.5:8080/metrics"
rtpengine_metrics_url = "https://user:pw@10.0.0.5:9901/metrics"

[[targets]]
name = "local.ctl"
address = "unixs:/run/kamailio/kamailio_ctl"

[[allow]]
address = "tcp:10.20.0.0/16:2046"
module = "light"

[[allow]]
address = "unix:/run/kamailio/*"
"""


def test_full_example() -> None:
    config = parse_config(FULL)
    assert config.pool.idle_ttl == 120.0
    assert config.pool.max_connections == 64
    assert config.pool.per_target == 2
    assert list(config.modules) == ["default", "light"]
    default, light = config.modules["default"], config.modules["light"]
    assert default.collectors == ("all",)
    assert default.timeout == 4.5
    assert light.collectors == (SOME_COLLECTOR,)
    assert light.timeout == 2.0
    assert isinstance(light.timeout, float)
    assert light.options.dialog_profiles == ("inbound", "outbound")
    assert dict(light.options.dispatcher_set_names) == {1: "carriers", 20: "media"}

    sbc = config.targets["sbc-fra-1"]
    assert sbc.address == Address("tcp", host="10.0.0.5", port=2046)
    assert sbc.module == "light"
    assert sbc.timeout == 3.0
    assert dict(sbc.labels) == {"site": "fra", "role": "sbc"}
    assert sbc.xhttp_prom_url == "http://10.0.0.5:8080/metrics"
    assert sbc.rtpengine_metrics_url == "https://user:pw@10.0.0.5:9901/metrics"
    local = config.targets["local.ctl"]
    assert local.address == Address("unix", path="/run/kamailio/kamailio_ctl")
    assert local.module is None
    assert local.timeout is None
    assert not local.labels

    assert [str(rule) for rule in config.allow] == ["tcp:10.20.0.0/16:2046", "unix:/run/kamailio/*"]
    assert config.allow[0].module == "light"
    assert config.allow[1].module is None
    assert config.sha256 == hashlib.sha256(FULL.encode()).hexdigest()


def test_empty_file_has_a_default_module() -> None:
    config = parse_config("")
    assert list(config.modules) == ["default"]
    module = config.modules["default"]
    assert module.collectors == ("all",)
    assert module.timeout == 5.0
    assert not module.options.dialog_profiles
    assert config.pool.idle_ttl == 300.0
    assert config.pool.max_connections == 512
    assert config.pool.per_target == 1
    assert not config.targets
    assert not config.allow


def test_load_config_hashes_the_file_bytes(tmp_path: Path) -> None:
    path = tmp_path / "targets.toml"
    path.write_bytes(FULL.encode())
    assert load_config(path).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    path.write_bytes(b"[pool]\nidle_ttl = 1\n# \xff\n")
    with pytest.raises(ConfigError, match=r"targets\.toml: not UTF-8"):
        load_config(path)


def test_example_targets_toml_at_the_repository_root_is_valid() -> None:
    config = load_config(REPO / "targets.toml")
    assert config.targets
    assert config.allow
    for target in config.targets.values():
        assert target.address.host in (None, "127.0.0.1"), target


def test_toml_syntax_errors_give_the_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("[pool]\nidle_ttl = 1\nmax_connections = = 2\n", "targets.toml")
    assert caught.value.line == 3
    assert str(caught.value).startswith("targets.toml: ")
    assert "line 3" in str(caught.value)
    with pytest.raises(ConfigError, match="line 2"):
        parse_config("[pool]\n[pool]\n")  # a table given twice


TARGET = '[[targets]]\nname = "t"\naddress = "tcp:127.0.0.1:2046"\n'


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("bogus = 1", "bogus", "unknown key"),
        ("pool = 1", "pool", "expected a table, got an integer"),
        ('[pool]\nidle_ttl = "5"', "pool.idle_ttl", "expected a number of seconds, got a string"),
        ("[pool]\nidle_ttl = 0", "pool.idle_ttl", "out of range"),
        ("[pool]\nidle_ttl = nan", "pool.idle_ttl", "out of range"),
        ("[pool]\nidle_ttl = inf", "pool.idle_ttl", "out of range"),
        ("[pool]\nidle_ttl = true", "pool.idle_ttl", "got a boolean"),
        ("[pool]\nmax_connections = true", "pool.max_connections", "got a boolean"),
        ("[pool]\nmax_connections = 1.5", "pool.max_connections", "got a float"),
        ("[pool]\nmax_connections = 0", "pool.max_connections", "out of range"),
        ("[pool]\nper_target = 0", "pool.per_target", "out of range"),
        (
            "[pool]\nmax_connections = 4\nper_target = 5",
            "pool.per_target",
            "more than pool.max_connections",
        ),
        ("[pool]\nsize = 3", "pool.size", "unknown key"),
        ("modules = 3", "modules", "expected a table"),
        ("[modules]\nm = 3", "modules.m", "expected a table, got an integer"),
        ('[modules."bad name"]', 'modules."bad name"', "is not a module name"),
        (f"[modules.{'m' * 129}]", "modules.mmm", "at most 128"),
        ("[modules.m]\ntimeout = 0", "modules.m.timeout", "out of range"),
        ("[modules.m]\ntimeout = 300.5", "modules.m.timeout", "out of range"),
        ("[modules.m]\ntimeout = -1", "modules.m.timeout", "out of range"),
        ('[modules.m]\ntimeout = "5s"', "modules.m.timeout", "got a string"),
        ("[modules.m]\nretries = 2", "modules.m.retries", "unknown key"),
        ('[modules.m]\ncollectors = "all"', "modules.m.collectors", "expected an array"),
        ("[modules.m]\ncollectors = []", "modules.m.collectors", "empty"),
        (
            '[modules.m]\ncollectors = ["nope"]',
            "modules.m.collectors[0]",
            "unknown collector 'nope'",
        ),
        (
            f'[modules.m]\ncollectors = ["{SOME_COLLECTOR}", "{SOME_COLLECTOR}"]',
            "modules.m.collectors",
            f"{SOME_COLLECTOR!r} is named twice (entries 0 and 1)",
        ),
        (
            f'[modules.m]\ncollectors = ["all", "{SOME_COLLECTOR}"]',
            "modules.m.collectors",
            '"all" already names every collector',
        ),
        (
            '[modules.m]\ndialog_profiles = "inbound"',
            "modules.m.dialog_profiles",
            "expected an array",
        ),
        (
            "[modules.m]\ndialog_profiles = [1]",
            "modules.m.dialog_profiles[0]",
            "expected a string, got an integer",
        ),
        ('[modules.m]\ndialog_profiles = [""]', "modules.m.dialog_profiles[0]", "empty"),
        (
            '[modules.m]\ndispatcher_set_names = { x = "a" }',
            "modules.m.dispatcher_set_names.x",
            "must be an integer",
        ),
        (
            '[modules.m]\ndispatcher_set_names = { "--1" = "a" }',
            "modules.m.dispatcher_set_names.--1",
            "must be an integer",
        ),
        (
            '[modules.m]\ndispatcher_set_names = { "1" = 2 }',
            "modules.m.dispatcher_set_names.1",
            "expected a string",
        ),
        ("targets = 1", "targets", "expected an array of tables ([[targets]])"),
        ("[targets]", "targets", "expected an array of tables"),
        ('[[targets]]\nname = "t"', "targets[0].address", "missing"),
        ('[[targets]]\naddress = "tcp:h:1"', "targets[0].name", "missing"),
        (TARGET + "port = 1", "targets[0].port", "unknown key"),
        ('[[targets]]\nname = 5\naddress = "tcp:h:1"', "targets[0].name", "expected a string"),
        ('[[targets]]\nname = ""\naddress = "tcp:h:1"', "targets[0].name", "empty"),
        (
            '[[targets]]\nname = "a b"\naddress = "tcp:h:1"',
            "targets[0].name",
            "use letters, digits",
        ),
        (
            '[[targets]]\nname = "tcp:10.0.0.1:2046"\naddress = "tcp:h:1"',
            "targets[0].name",
            "looks like an address",
        ),
        (
            '[[targets]]\nname = "/run/kamailio/ctl"\naddress = "tcp:h:1"',
            "targets[0].name",
            "looks like an address",
        ),
        (
            f'[[targets]]\nname = "{"n" * 129}"\naddress = "tcp:h:1"',
            "targets[0].name",
            "at most 128",
        ),
        (
            TARGET + '[[targets]]\nname = "u"\naddress = "tcp:h:99999"',
            "targets[1].address",
            "out of range",
        ),
        (
            TARGET + '[[targets]]\nname = "u"\naddress = "ftp:h:21"',
            "targets[1].address",
            "unknown protocol",
        ),
        (
            TARGET + '[[targets]]\nname = "u"\naddress = "unix:relative/ctl"',
            "targets[1].address",
            "absolute",
        ),
        (
            f'[[targets]]\nname = "t"\naddress = "tcp:{"a" * 300}:1"',
            "targets[0].address",
            "at most 256",
        ),
        (TARGET + TARGET, "targets[1].name", "'t' is already the name of targets[0]"),
        (TARGET + 'module = "nope"', "targets[0].module", "unknown module 'nope'"),
        (TARGET + "timeout = 0", "targets[0].timeout", "out of range"),
        (TARGET + "timeout = 301", "targets[0].timeout", "out of range"),
        (TARGET + 'timeout = "3"', "targets[0].timeout", "got a string"),
        (TARGET + "labels = [1]", "targets[0].labels", "expected a table"),
        (TARGET + 'labels = { 1x = "a" }', "targets[0].labels.1x", "is not a label name"),
        (TARGET + 'labels = { "a-b" = "a" }', "targets[0].labels.a-b", "is not a label name"),
        (TARGET + 'labels = { __address__ = "a" }', "targets[0].labels.__address__", "reserved"),
        (TARGET + "labels = { site = 1 }", "targets[0].labels.site", "expected a string"),
        (
            TARGET + f'labels = {{ site = "{"x" * 1025}" }}',
            "targets[0].labels.site",
            "at most 1024",
        ),
        (
            TARGET + 'xhttp_prom_url = "ftp://h/metrics"',
            "targets[0].xhttp_prom_url",
            "http or https",
        ),
        (TARGET + 'xhttp_prom_url = "/metrics"', "targets[0].xhttp_prom_url", "http or https"),
        (
            TARGET + 'xhttp_prom_url = "http:///metrics"',
            "targets[0].xhttp_prom_url",
            "needs a host",
        ),
        (
            TARGET + 'xhttp_prom_url = "http://h:99999/"',
            "targets[0].xhttp_prom_url",
            "not a valid URL",
        ),
        (TARGET + 'xhttp_prom_url = "http://h/a b"', "targets[0].xhttp_prom_url", "whitespace"),
        (
            TARGET + 'rtpengine_metrics_url = "gopher://h"',
            "targets[0].rtpengine_metrics_url",
            "http or https",
        ),
        (
            TARGET + f'rtpengine_metrics_url = "http://h/{"p" * 2048}"',
            "targets[0].rtpengine_metrics_url",
            "at most 2048",
        ),
        ("allow = 1", "allow", "expected an array of tables"),
        ("[[allow]]\naddress = 5", "allow[0].address", "expected a string, got an integer"),
        ("pool = { idle_ttl = 1979-05-27 }", "pool.idle_ttl", "got a date/time"),
        ('[[allow]]\nmodule = "default"', "allow[0].address", "missing"),
        ('[[allow]]\naddress = "tcp:h:1"\nport = 1', "allow[0].port", "unknown key"),
        ('[[allow]]\naddress = "tcp:h:1"\nmodule = "nope"', "allow[0].module", "unknown module"),
        ('[[allow]]\naddress = "10.0.0.0/8:2046"', "allow[0].address", "starts with its transport"),
        ('[[allow]]\naddress = "sctp:10.0.0.0/8:1"', "allow[0].address", "transport"),
        ('[[allow]]\naddress = "tcp:10.0.0.1/8:2046"', "allow[0].address", "has host bits set"),
        ('[[allow]]\naddress = "tcp:10.0.0.0/33:2046"', "allow[0].address", "bad network"),
        ('[[allow]]\naddress = "tcp:10.0.0.0/8"', "allow[0].address", "expected HOST:PORT"),
        ('[[allow]]\naddress = "tcp:10.0.0.0/8:0"', "allow[0].address", "bad port '0'"),
        ('[[allow]]\naddress = "tcp:10.0.0.0/8:http"', "allow[0].address", "bad port"),
        ('[[allow]]\naddress = "tcp:fd00::/64:2046"', "allow[0].address", "IPv6 networks go in"),
        (
            '[[allow]]\naddress = "tcp:[fd00::]/64:2046"',
            "allow[0].address",
            "prefix length inside the brackets",
        ),
        ('[[allow]]\naddress = "tcp:[fd00::/64]2046"', "allow[0].address", "expected ':PORT'"),
        (
            '[[allow]]\naddress = "tcp:[10.0.0.0/8]:2046"',
            "allow[0].address",
            "IPv4 networks go without brackets",
        ),
        (
            '[[allow]]\naddress = "tcp:[::ffff:10.0.0.0/104]:2046"',
            "allow[0].address",
            "IPv4-mapped",
        ),
        ('[[allow]]\naddress = "tcp:10.0.0.*:2046"', "allow[0].address", "a glob over IPv4"),
        ('[[allow]]\naddress = "tcp:10.*:2046"', "allow[0].address", "a glob over IPv4"),
        ('[[allow]]\naddress = "tcp:a..b:2046"', "allow[0].address", "bad host name pattern"),
        ('[[allow]]\naddress = "tcp:bad!host:2046"', "allow[0].address", "bad host name pattern"),
        ('[[allow]]\naddress = "tcp:*.example :2046"', "allow[0].address", "whitespace"),
        ('[[allow]]\naddress = "unix:run/kamailio/*"', "allow[0].address", "must be absolute"),
        ('[[allow]]\naddress = "unix:/run/kamailio/../*"', "allow[0].address", "'..' segment"),
        ('[[allow]]\naddress = "unix:/run//kamailio/*"', "allow[0].address", "empty"),
        ('[[allow]]\naddress = "unix:/run/kamailio/"', "allow[0].address", "empty"),
        ('[[allow]]\naddress = "unix:/run/**"', "allow[0].address", "'**' means nothing"),
    ],
)
def test_invalid_config_names_the_key(text: str, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "targets.toml")
    assert caught.value.key is not None
    assert caught.value.key.startswith(key)
    assert str(caught.value).startswith(f"targets.toml: {key}")
    assert message in str(caught.value)


def test_url_errors_do_not_repeat_the_password() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(TARGET + 'xhttp_prom_url = "ftp://user:hunter2@h/metrics"')
    assert "hunter2" not in str(caught.value)


# -- resolving /probe targets ------------------------------------------------------------------

RULES = """
[modules.fast]
timeout = 1.0

[modules.slow]
timeout = 10.0

[[targets]]
name = "sbc-1"
address = "tcp:10.0.0.5:2046"
module = "fast"
timeout = 2.5

[[targets]]
name = "local"
address = "unix:/run/kamailio/kamailio_ctl"

[[allow]]
address = "tcp:10.20.0.0/16:2046"
module = "slow"

[[allow]]
address = "tcp:[fd00::/64]:*"

[[allow]]
address = "tcp:*.kamailio.svc.cluster.local:2046"

[[allow]]
address = "udp:192.168.1.0/24:2049"

[[allow]]
address = "unix:/run/kamailio/*"

[[allow]]
address = "unixd:/run/kamailio/*.sock"
module = "fast"
"""

# What the fake resolver answers; a name missing here does not resolve.
DNS: dict[str, list[str]] = {
    "kam-0.kamailio.svc.cluster.local": ["10.99.0.7"],  # outside every network: the glob allows
    "inside.example": ["10.20.7.7"],
    "outside.example": ["203.0.113.9"],
    "mixed.example": ["203.0.113.9", "10.20.1.1"],
    "mapped-in.example": ["::ffff:10.20.0.3"],
    "mapped-out.example": ["::ffff:203.0.113.9"],
    "kamailio": ["10.1.2.3"],
}


class FakeResolver:
    """Stands in for the loop's getaddrinfo, recording the names asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def getaddrinfo(
        self, host: str, port: int, *, type: int = 0, **_: Any
    ) -> list[tuple[Any, ...]]:
        self.asked.append(host)
        if host.startswith("hang."):
            await asyncio.sleep(3600)
        if host not in DNS:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        infos = []
        for ip in DNS[host]:
            family = socket.AF_INET6 if ":" in ip else socket.AF_INET
            sockaddr = (ip, port, 0, 0) if family == socket.AF_INET6 else (ip, port)
            infos.append((family, type, 6, "", sockaddr))
        return infos


@pytest.fixture
def config() -> Config:
    return parse_config(RULES)


@pytest.fixture
async def resolver(monkeypatch: pytest.MonkeyPatch) -> FakeResolver:
    fake = FakeResolver()
    monkeypatch.setattr(
        config_module.LOOKUPS,
        "lookup",
        lambda host, port, kind: fake.getaddrinfo(host, port, type=kind),
    )
    return fake


@pytest.mark.parametrize(
    ("target", "module", "address", "module_name", "rule", "timeout"),
    [
        # listed names: the request's module, else the target's, else default
        ("sbc-1", None, "tcp:10.0.0.5:2046", "fast", None, 2.5),
        ("sbc-1", "slow", "tcp:10.0.0.5:2046", "slow", None, 2.5),
        ("local", None, "unix:/run/kamailio/kamailio_ctl", "default", None, 5.0),
        # network rules; the rule's module unless the request names one
        ("tcp:10.20.3.4:2046", None, "tcp:10.20.3.4:2046", "slow", 0, 10.0),
        ("tcp:10.20.3.4:2046", "fast", "tcp:10.20.3.4:2046", "fast", 0, 1.0),
        ("tcp:[fd00::1]:5000", None, "tcp:[fd00::1]:5000", "default", 1, 5.0),
        ("tcp:[FD00:0:0:0:0:0:0:abcd]:2046", None, "tcp:[fd00::abcd]:2046", "default", 1, 5.0),
        ("udp:192.168.1.9:2049", None, "udp:192.168.1.9:2049", "default", 3, 5.0),
        ("192.168.1.9:2049", None, "udp:192.168.1.9:2049", "default", 3, 5.0),
        # IPv4-mapped IPv6 is judged, and connected to, as IPv4
        ("tcp:[::ffff:10.20.0.9]:2046", None, "tcp:10.20.0.9:2046", "slow", 0, 10.0),
        # names: connect to the address that was checked
        (
            "tcp:kam-0.kamailio.svc.cluster.local:2046",
            None,
            "tcp:10.99.0.7:2046",
            "default",
            2,
            5.0,
        ),
        (
            "tcp:KAM-0.Kamailio.SVC.cluster.local:2046",
            None,
            "tcp:10.99.0.7:2046",
            "default",
            2,
            5.0,
        ),
        ("tcp:inside.example:2046", None, "tcp:10.20.7.7:2046", "slow", 0, 10.0),
        ("tcp:mixed.example:2046", None, "tcp:10.20.1.1:2046", "slow", 0, 10.0),
        ("tcp:mapped-in.example:2046", None, "tcp:10.20.0.3:2046", "slow", 0, 10.0),
        # unix paths
        (
            "unix:/run/kamailio/kamailio_ctl",
            None,
            "unix:/run/kamailio/kamailio_ctl",
            "default",
            4,
            5.0,
        ),
        ("unixs:/run/kamailio/ctl", None, "unix:/run/kamailio/ctl", "default", 4, 5.0),
        ("/run/kamailio/ctl", None, "unix:/run/kamailio/ctl", "default", 4, 5.0),
        ("unixd:/run/kamailio/ctl.sock", None, "unixd:/run/kamailio/ctl.sock", "fast", 5, 1.0),
    ],
)
async def test_allowed_targets(
    config: Config,
    resolver: FakeResolver,
    target: str,
    module: str | None,
    address: str,
    module_name: str,
    rule: int | None,
    timeout: float,
) -> None:
    resolved = await resolve_target(config, target, module)
    assert str(resolved.target.address) == address
    assert resolved.module.name == module_name
    assert resolved.rule is (None if rule is None else config.allow[rule])
    assert resolved.timeout == timeout
    if rule is not None:
        assert not resolved.target.labels
        assert resolved.target.xhttp_prom_url is None


async def test_an_allowed_name_keeps_the_requested_form_as_its_name(
    config: Config, resolver: FakeResolver
) -> None:
    resolved = await resolve_target(config, "tcp:KAM-0.kamailio.svc.cluster.local:2046")
    assert resolved.target.name == "tcp:kam-0.kamailio.svc.cluster.local:2046"
    assert resolved.target.address == Address("tcp", host="10.99.0.7", port=2046)


# Rejected before any name is looked up.
@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("", "empty"),
        ("sbc-2", "not a listed target name"),
        ("SBC-1", "not a listed target name"),
        ("tcp:" + "a" * 300 + ":2046", "longer than 256"),
        ("tcp%3A10.20.0.1%3A2046", "percent-encoded"),
        ("tcp%253A10.20.0.1%253A2046", "percent-encoded"),
        ("unix:/run/kamailio/%2e%2e/etc/ctl", "percent-encoded"),
        ("tcp:10.20.0.1:2046 ", "whitespace"),
        ("tcp:10.20.0.1:2046\n", "control"),
        ("unix:/run/kamailio/ctl\x00.sock", "control"),
        ("tcp:kämailio.kamailio.svc.cluster.local:2046", "non-ASCII"),
        ("ftp:10.20.0.1:21", "unknown protocol"),
        ("tcp:10.20.0.1:0", "out of range"),
        ("tcp:0x0a140001:2046", "numeric host"),
        ("tcp:10.20.1:2046", "numeric host"),
        ("tcp:10.21.0.1:2046", "no allow rule covers"),
        ("tcp:10.20.0.1:2047", "no allow rule covers"),
        ("udp:10.20.0.1:2046", "no allow rule covers"),
        ("tcp:[::ffff:203.0.113.9]:2046", "no allow rule covers"),
        ("tcp:[::ffff:192.168.1.9]:2049", "no allow rule covers"),
        ("tcp:[fe80::1]:2046", "no allow rule covers"),
        ("tcp:[fd00:0:0:1::1]:2046", "no allow rule covers"),
        ("udp:kam-0.kamailio.svc.cluster.local:2050", "no allow rule matches this host name"),
        ("unix:/run/kamailio/../../etc/ctl", "'..' segment"),
        ("unix:/run/kamailio/./ctl", "'.' or '..'"),
        ("unix:/run/kamailio//ctl", "empty"),
        ("unix:/run/kamailio/", "empty"),
        ("unix:/run/kamailio/sub/ctl", "no allow rule matches this path"),
        ("unix:/tmp/ctl", "no allow rule matches this path"),
        ("unixd:/run/kamailio/ctl", "no allow rule matches this path"),
    ],
)
async def test_rejected_before_any_lookup(
    config: Config, resolver: FakeResolver, target: str, reason: str
) -> None:
    with pytest.raises(TargetRejected) as caught:
        await resolve_target(config, target, None)
    assert reason in str(caught.value)
    assert "\n" not in str(caught.value)
    assert resolver.asked == []


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("tcp:outside.example:2046", "resolves to 203.0.113.9, which no allow rule covers"),
        ("tcp:mapped-out.example:2046", "resolves to 203.0.113.9"),
        ("tcp:nowhere.example:2046", "does not resolve"),
        # '*' stands within one label: a deeper name is judged by the network rules only
        ("tcp:a.kam-0.kamailio.svc.cluster.local:2046", "does not resolve"),
    ],
)
async def test_names_are_judged_by_their_addresses(
    config: Config, resolver: FakeResolver, target: str, reason: str
) -> None:
    with pytest.raises(TargetRejected) as caught:
        await resolve_target(config, target, None)
    assert reason in caught.value.detail  # for the log
    # The client learns only that the name is not allowed: not whether it resolves, nor to what.
    assert str(caught.value).endswith(": no allow rule matches this host name")
    assert "203.0.113" not in str(caught.value)
    assert resolver.asked == [target.split(":")[1]]


async def test_allowed_name_that_does_not_resolve_is_a_probe_failure(
    config: Config, resolver: FakeResolver
) -> None:
    with pytest.raises(TargetResolveError, match=r"cannot resolve gone\.kamailio"):
        await resolve_target(config, "tcp:gone.kamailio.svc.cluster.local:2046", None)
    with pytest.raises(TargetResolveError, match="timed out"):
        await resolve_target(
            config, "tcp:hang.kamailio.svc.cluster.local:2046", None, resolve_timeout=0.05
        )


async def test_unknown_module_is_its_own_error(config: Config, resolver: FakeResolver) -> None:
    for target in ("sbc-1", "tcp:10.20.0.1:2046", "tcp:203.0.113.1:2046"):
        with pytest.raises(UnknownModule, match="unknown module 'nope'") as caught:
            await resolve_target(config, target, "nope")
        assert caught.value.module == "nope"
    assert resolver.asked == []


async def test_first_matching_rule_wins(resolver: FakeResolver) -> None:
    config = parse_config("""
[modules.a]
[modules.b]
[[allow]]
address = "tcp:10.0.0.0/8:*"
module = "a"
[[allow]]
address = "tcp:10.20.0.0/16:2046"
module = "b"
""")
    resolved = await resolve_target(config, "tcp:10.20.0.1:2046", None)
    assert resolved.module.name == "a"


async def test_a_lone_star_is_any_single_label_name(resolver: FakeResolver) -> None:
    config = parse_config('[[allow]]\naddress = "tcp:*:2046"\n')
    resolved = await resolve_target(config, "tcp:kamailio:2046", None)
    assert resolved.target.address == Address("tcp", host="10.1.2.3", port=2046)
    with pytest.raises(TargetRejected, match="no allow rule matches this host name"):
        await resolve_target(config, "tcp:kamailio.local:2046", None)


async def test_no_rules_means_listed_targets_only(resolver: FakeResolver) -> None:
    config = parse_config(TARGET)
    assert (await resolve_target(config, "t", None)).target.name == "t"
    for target in ("tcp:127.0.0.1:2046", "tcp:localhost:2046", "unix:/run/kamailio/ctl"):
        with pytest.raises(TargetRejected):
            await resolve_target(config, target, None)
    assert resolver.asked == []


# The system's resolver: localhost is 127.0.0.1 (and maybe ::1) everywhere.


async def test_localhost_cannot_reach_outside_a_network_rule() -> None:
    config = parse_config('[[allow]]\naddress = "tcp:10.0.0.0/8:*"\n')
    with pytest.raises(TargetRejected) as caught:
        await resolve_target(config, "tcp:localhost:2046", None)
    assert re.search(r"resolves to .*127\.0\.0\.1", caught.value.detail)
    assert "127.0.0.1" not in str(caught.value)


async def test_localhost_inside_a_network_rule_connects_to_the_checked_address() -> None:
    config = parse_config('[[allow]]\naddress = "tcp:127.0.0.0/8:2046"\n')
    resolved = await resolve_target(config, "tcp:localhost:2046", None)
    assert resolved.target.address == Address("tcp", host="127.0.0.1", port=2046)


async def test_host_glob_with_the_system_resolver() -> None:
    config = parse_config('[[allow]]\naddress = "tcp:local*:2046"\n')
    resolved = await resolve_target(config, "tcp:localhost:2046", None)
    assert resolved.target.address.host in ("127.0.0.1", "::1")
    with pytest.raises(TargetRejected, match="no allow rule matches this host name"):
        await resolve_target(config, "tcp:remotehost:2046", None)


# -- every error at once, lines, entries given twice, files ------------------------------------


def test_every_error_of_the_file_is_reported_at_once() -> None:
    text = (
        "[pool]\n"  # 1
        'idle_ttl = "5"\n'  # 2
        "[modules.m]\n"  # 3
        'dialog_profiles = ["inbound", "inbound"]\n'  # 4
        "[[targets]]\n"  # 5
        'name = "a"\n'  # 6
        'address = "tcp:h:99999"\n'  # 7
        "[[targets]]\n"  # 8
        'name = "a"\n'  # 9
        'address = "tcp:h:1"\n'  # 10
        'module = "nope"\n'  # 11
        "port = 1\n"  # 12
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "targets.toml")
    found = [(issue.key, issue.line) for issue in caught.value.issues]
    assert found == [
        ("pool.idle_ttl", 2),
        ("modules.m.dialog_profiles", 4),
        ("targets[0].address", 7),
        ("targets[1].name", 9),
        ("targets[1].module", 11),
        ("targets[1].port", 12),
    ]
    assert (caught.value.key, caught.value.line) == ("pool.idle_ttl", 2)
    message = str(caught.value)
    assert message.startswith("targets.toml: pool.idle_ttl: expected a number of seconds")
    assert message.endswith("(6 errors)")
    assert "'inbound' is named twice (entries 0 and 1) (line 4)" in message
    assert "'a' is already the name of targets[0] (line 9)" in message


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        ("# a comment\nbogus = 1\n", "bogus", 2),
        ('[[targets]]\nname = "t"\n', "targets[0].address", 1),  # missing: the table's line
        (TARGET + "\n[[targets]]\n" + 'name = "u"\naddress = "x:"\n', "targets[1].address", 7),
        (TARGET + "labels = { 1x = 'a' }\n", "targets[0].labels.1x", 4),
        ("[modules.m]\n\n timeout = 0\n", "modules.m.timeout", 3),
        ('[modules."m.n"]\ntimeout = 0\n', 'modules."m.n".timeout', None),  # not plain to see
        ('[[allow]]\n\n  address = "tcp:10.0.0.1/8:1"\n', "allow[0].address", 3),
    ],
)
def test_errors_give_the_line_of_the_key(text: str, key: str, line: int | None) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "targets.toml")
    assert (caught.value.key, caught.value.line) == (key, line)
    assert str(caught.value).endswith(f"(line {line})") == (line is not None)


def test_a_path_that_the_text_does_not_show_gets_no_line() -> None:
    # Tables written inline: no [[targets]] header to point at, so the key's line is unknown
    # beyond the array's own.
    text = 'targets = [{ name = "t", address = "tcp:h:1" }, { name = "t", address = "tcp:h:2" }]'
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert (caught.value.key, caught.value.line) == ("targets[1].name", 1)


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        (
            '[modules.m]\ndialog_profiles = ["inbound", "inbound"]',
            "modules.m.dialog_profiles",
            "'inbound' is named twice (entries 0 and 1)",
        ),
        (
            '[modules.m]\nstats_groups = ["shmem", "core", "shmem"]',
            "modules.m.stats_groups",
            "'shmem' is named twice (entries 0 and 2)",
        ),
        (
            '[modules.m]\ndispatcher_set_names = { "1" = "a", "01" = "b" }',
            "modules.m.dispatcher_set_names",
            "keys '1' and '01' are both set 1",
        ),
        (
            '[[allow]]\naddress = "tcp:10.0.0.0/8:1"\n[[allow]]\naddress = "tcp:10.0.0.0/8:1"',
            "allow[1].address",
            "'tcp:10.0.0.0/8:1' is already the pattern of allow[0]",
        ),
    ],
)
def test_entries_given_twice_are_errors(text: str, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "targets.toml")
    assert caught.value.key == key
    assert str(caught.value).startswith(f"targets.toml: {key}: {message}")


def test_the_module_schema_has_every_collector_option() -> None:
    # A collector option missing from the schema could never be set in targets.toml.
    from probe_exporter.collectors import CollectorOptions
    from probe_exporter.config.document import ModuleDocument
    from probe_exporter.limits import ProbeLimits

    options = {option.name for option in dataclasses.fields(CollectorOptions)}
    limits = {limit.name for limit in dataclasses.fields(ProbeLimits)}
    assert options == set(ModuleDocument.model_fields) - {"collectors", "timeout", *limits}
    module = parse_config(
        '[modules.m]\ndialog_profiles = ["a"]\nstats_groups = ["g"]\n'
        'dispatcher_set_names = { "-1" = "x" }\n'
    ).modules["m"]
    assert module.options == CollectorOptions(("a",), MappingProxyType({-1: "x"}), ("g",))


def test_a_module_sets_its_probe_limits() -> None:
    module = parse_config(
        "[modules.m]\nmax_reply_bytes = 65536\nmax_probe_bytes = 262144\n"
        "max_values = 5000\nmax_samples = 2000\n"
    ).modules["m"]
    assert (module.limits.max_reply_bytes, module.limits.max_probe_bytes) == (65536, 262144)
    assert (module.limits.max_values, module.limits.max_samples) == (5000, 2000)
    with pytest.raises(ConfigError) as caught:
        parse_config("[modules.m]\nmax_samples = 0\n", "targets.toml")
    assert caught.value.key == "modules.m.max_samples"


def test_an_address_without_protocol_is_accepted_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "targets.toml"
    path.write_text(TARGET + '[[targets]]\nname = "u"\naddress = "127.0.0.1:2046"\n')
    with caplog.at_level(logging.WARNING, logger="probe_exporter"):
        config = load_config(path)
    assert config.targets["u"].address == Address("udp", host="127.0.0.1", port=2046)
    (warning,) = config.warnings
    assert warning.startswith("targets[1].address: '127.0.0.1:2046' names no protocol")
    assert "write udp:127.0.0.1:2046, or tcp:127.0.0.1:2046" in warning
    assert warning.endswith("(line 6)")
    assert [record.getMessage() for record in caplog.records] == [f"{path}: {warning}"]
    assert not parse_config(TARGET).warnings


def test_a_url_form_address_says_how_to_write_it() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config('[[targets]]\nname = "t"\naddress = "tcp://10.0.0.1:2046"\n')
    assert "targets[0].address: 'tcp://10.0.0.1:2046' is written as a URL: write " in str(
        caught.value
    )
    assert "tcp:10.0.0.1:2046 (no '//')" in str(caught.value)


def test_a_missing_file_is_named_plainly(tmp_path: Path) -> None:
    missing = tmp_path / "targets.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(missing)
    assert str(caught.value) == f"config file {missing}: no such file"


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (os.mkfifo, "a FIFO"),
        (os.mkdir, "a directory"),
    ],
)
def test_only_regular_files_are_read(
    tmp_path: Path, make: Callable[[Path], None], kind: str
) -> None:
    path = tmp_path / "targets.toml"
    make(path)
    # A FIFO with no writer would block a plain open() for ever; the load returns at once.
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"config file {path}: not a regular file ({kind})"
    link = tmp_path / "link.toml"
    link.symlink_to(path)
    with pytest.raises(ConfigError, match=re.escape(f"not a regular file ({kind})")):
        load_config(link)


def test_a_character_device_is_not_read() -> None:
    with pytest.raises(ConfigError, match=r"/dev/zero: not a regular file \(a character device\)"):
        load_config("/dev/zero")
