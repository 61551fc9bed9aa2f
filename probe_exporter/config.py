"""targets.toml: modules, listed targets, allow rules and pool settings; target resolution.

The file (every key is optional; see the example targets.toml at the repository root):

    [pool]            idle_ttl (seconds, default 300), max_connections (1024), per_target (1)
    [modules.NAME]    collectors (["all"]), timeout (seconds, default 5), collector options
    [[targets]]       name, address (required); module, timeout, labels, xhttp_prom_url,
                      rtpengine_metrics_url
    [[allow]]         address (a pattern, required); module

A `default` module (every collector, 5 s) exists even when the file defines none. Validation is
strict: unknown keys, wrong types, out-of-range values, bad addresses and dangling references
are ConfigErrors naming the key, as in `targets[2].address` (indexes count from 0).

Target names are what `/probe?target=` is given: letters, digits, `_`, `.` and `-`, never `:`
or `/`, so that no name can be read as an address.

Allow rules let `/probe` reach addresses that are not listed. A pattern always names its
transport (tcp, udp, unix/unixs, unixd):

    tcp:10.20.0.0/16:2046              IPv4 network (a single address is a /32)
    tcp:[fd00::/64]:2046               IPv6 network: the prefix length inside the brackets
    tcp:*.kamailio.svc.cluster.local:2046
                                       host name; `*` stands for one or more characters
                                       within one label (it never crosses a `.`)
    udp:10.0.0.0/8:*                   port `*`: any port
    unix:/run/kamailio/*               path; `*` never crosses a `/`

A host name is probed only once it resolves (the loop's getaddrinfo, bounded in time), and the
connection goes to the address that was checked (no second lookup, so no DNS rebinding).
Network rules judge the resolved address, so a name cannot reach outside them. IPv4-mapped IPv6
addresses (`::ffff:10.0.0.1`) are judged, and connected to, as the IPv4 address they map.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
import hashlib
import ipaddress
import json
import math
import os
import re
import socket
import tomllib
import types
import typing
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .binrpc.address import PROTOCOLS, Address, AddressError, Transport, parse_address
from .collectors import COLLECTORS, CollectorOptions

__all__ = [
    "DEFAULT_MODULE",
    "DEFAULT_RESOLVE_TIMEOUT",
    "MAX_TARGET_LENGTH",
    "AllowRule",
    "Config",
    "ConfigError",
    "Module",
    "PoolSettings",
    "ResolvedTarget",
    "Target",
    "TargetRejected",
    "TargetResolveError",
    "UnknownModule",
    "load_config",
    "parse_config",
    "resolve_target",
]

DEFAULT_MODULE = "default"
DEFAULT_MODULE_TIMEOUT = 5.0
MAX_TIMEOUT = 300.0
MAX_IDLE_TTL = 86400.0
MAX_CONNECTIONS = 65536
DEFAULT_RESOLVE_TIMEOUT = 5.0
MAX_TARGET_LENGTH = 256  # a /probe target, a name or an address
MAX_NAME_LENGTH = 128  # target, module and label names
MAX_STRING_LENGTH = 256  # addresses, patterns and collector option strings
MAX_LABEL_VALUE_LENGTH = 1024
MAX_URL_LENGTH = 2048
MAX_LABELS = 64
MAX_LIST_LENGTH = 1024

_TARGET_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_MODULE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_INTEGER_KEY = re.compile(r"-?[0-9]{1,10}")
_HOST_PATTERN = re.compile(r"[a-z0-9_*]([a-z0-9_*.-]*[a-z0-9_*])?")
_TOML_POSITION = re.compile(r"at line (\d+)")
_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class ConfigError(ValueError):
    """An invalid targets.toml; the message names the file and the key path (or line)."""

    def __init__(self, message: str, *, key: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.line = line


class TargetRejected(Exception):
    """The target is neither a listed name nor allowed by a rule (HTTP 403); nothing was
    connected to. The message, one line, is the client's: it never tells what a name resolves
    to, or whether it resolves. `detail`, for the exporter's log, may."""

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail or message


class TargetResolveError(Exception):
    """A host name allowed by a rule did not resolve (the probe fails at stage "resolve")."""


class UnknownModule(LookupError):
    """The requested module is not defined (HTTP 400)."""

    def __init__(self, module: str) -> None:
        super().__init__(f"unknown module {module[:MAX_NAME_LENGTH]!r}")
        self.module = module


@dataclass(frozen=True, slots=True)
class PoolSettings:
    idle_ttl: float = 300.0
    max_connections: int = 1024
    per_target: int = 1


@dataclass(frozen=True, slots=True)
class Module:
    name: str
    collectors: tuple[str, ...]  # as written: collector names, or ("all",)
    timeout: float
    options: CollectorOptions


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    address: Address
    module: str | None = None
    timeout: float | None = None
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    xhttp_prom_url: str | None = None
    rtpengine_metrics_url: str | None = None


@dataclass(frozen=True, slots=True)
class AllowRule:
    """One `[[allow]]` pattern; exactly one of network, host_pattern, path_pattern is set."""

    pattern: str
    transport: Transport
    module: str | None = None
    network: IPNetwork | None = None
    host_pattern: str | None = None  # lower case
    port: int | None = None  # None: any port (tcp/udp)
    path_pattern: str | None = None
    _regex: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        return self.pattern

    def matches_name(self, host: str) -> bool:
        return self.host_pattern is not None and self._matches(host)

    def matches_path(self, path: str) -> bool:
        return self.path_pattern is not None and self._matches(path)

    def contains(self, ip: IPAddress) -> bool:
        return self.network is not None and ip in self.network

    def _matches(self, text: str) -> bool:
        return self._regex is not None and self._regex.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class Config:
    pool: PoolSettings
    modules: Mapping[str, Module]
    targets: Mapping[str, Target]
    allow: tuple[AllowRule, ...]
    sha256: str

    @property
    def longest_timeout(self) -> float:
        """No probe under this config can take longer (the largest configured timeout)."""
        return max(
            [m.timeout for m in self.modules.values()]
            + [t.timeout for t in self.targets.values() if t.timeout is not None]
        )


@dataclass(frozen=True, slots=True)
class ResolvedTarget:
    """What to probe: a listed target, or one made from an allowed address (then
    `target.address` holds the IP literal that was checked, and `rule` the rule that allowed
    it)."""

    target: Target
    module: Module
    rule: AllowRule | None = None

    @property
    def timeout(self) -> float:
        """The configured timeout: the target's if set, else the module's."""
        return self.target.timeout if self.target.timeout is not None else self.module.timeout


# -- loading -----------------------------------------------------------------------------------


def load_config(path: str | os.PathLike[str]) -> Config:
    """Reads and validates a targets.toml file (OSError if it cannot be read)."""
    data = Path(path).read_bytes()
    source = os.fspath(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 (byte {exc.start})") from None
    return parse_config(text, source)


def parse_config(text: str, source: str = "<string>") -> Config:
    """Validates targets.toml text; `sha256` is the hash of its UTF-8 bytes."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        position = _TOML_POSITION.search(str(exc))
        raise ConfigError(
            f"{source}: {exc}", line=int(position.group(1)) if position else None
        ) from None
    except RecursionError:
        # tomllib recurses once per level of nested arrays or inline tables.
        raise ConfigError(f"{source}: arrays or inline tables nested too deeply") from None
    try:
        return _build(document, hashlib.sha256(text.encode("utf-8")).hexdigest())
    except _Invalid as exc:
        raise ConfigError(f"{source}: {exc.key}: {exc.reason}", key=exc.key) from None


class _Invalid(Exception):
    def __init__(self, key: str, reason: str) -> None:
        super().__init__(key, reason)
        self.key = key
        self.reason = reason


def _build(document: dict[str, Any], sha256: str) -> Config:
    _check_keys(document, ("pool", "modules", "targets", "allow"), "")
    pool = _parse_pool(_table(document.get("pool", {}), "pool"))
    modules = _parse_modules(_table(document.get("modules", {}), "modules"))
    targets: dict[str, Target] = {}
    first_index: dict[str, int] = {}
    for index, table in enumerate(_tables(document.get("targets", []), "targets")):
        target = _parse_target(table, f"targets[{index}]", modules)
        if target.name in targets:
            earlier = first_index[target.name]
            raise _Invalid(
                f"targets[{index}].name",
                f"{target.name!r} is already the name of targets[{earlier}]",
            )
        targets[target.name] = target
        first_index[target.name] = index
    allow = tuple(
        _parse_allow(table, f"allow[{index}]", modules)
        for index, table in enumerate(_tables(document.get("allow", []), "allow"))
    )
    return Config(
        pool=pool,
        modules=MappingProxyType(modules),
        targets=MappingProxyType(targets),
        allow=allow,
        sha256=sha256,
    )


def _parse_pool(table: dict[str, Any]) -> PoolSettings:
    _check_keys(table, ("idle_ttl", "max_connections", "per_target"), "pool")
    defaults = PoolSettings()
    max_connections = _integer(
        table.get("max_connections", defaults.max_connections),
        "pool.max_connections",
        1,
        MAX_CONNECTIONS,
    )
    per_target = _integer(
        table.get("per_target", defaults.per_target), "pool.per_target", 1, MAX_CONNECTIONS
    )
    if per_target > max_connections:
        raise _Invalid(
            "pool.per_target", f"{per_target} is more than pool.max_connections ({max_connections})"
        )
    return PoolSettings(
        idle_ttl=_seconds(table.get("idle_ttl", defaults.idle_ttl), "pool.idle_ttl", MAX_IDLE_TTL),
        max_connections=max_connections,
        per_target=per_target,
    )


def _parse_modules(tables: dict[str, Any]) -> dict[str, Module]:
    modules: dict[str, Module] = {}
    for name, value in tables.items():
        key = f"modules.{_key_part(name)}"
        _check_name(name, key, _MODULE_NAME, "a module name")
        modules[name] = _parse_module(name, _table(value, key), key)
    if DEFAULT_MODULE not in modules:
        modules[DEFAULT_MODULE] = Module(
            DEFAULT_MODULE, ("all",), DEFAULT_MODULE_TIMEOUT, CollectorOptions()
        )
    return modules


def _parse_module(name: str, table: dict[str, Any], key: str) -> Module:
    option_types = _collector_option_types()
    _check_keys(table, ("collectors", "timeout", *option_types), key)
    collectors = _parse_collectors(table.get("collectors", ["all"]), f"{key}.collectors")
    options = {
        option: _convert(table[option], option_types[option], f"{key}.{option}")
        for option in option_types
        if option in table
    }
    try:
        collector_options = CollectorOptions(**options)
    except (TypeError, ValueError) as exc:
        raise _Invalid(key, str(exc)) from None
    return Module(
        name=name,
        collectors=collectors,
        timeout=_seconds(
            table.get("timeout", DEFAULT_MODULE_TIMEOUT), f"{key}.timeout", MAX_TIMEOUT
        ),
        options=collector_options,
    )


def _parse_collectors(value: object, key: str) -> tuple[str, ...]:
    names = _strings(value, key)
    if not names:
        raise _Invalid(key, 'empty: name collectors, or "all"')
    known = sorted(COLLECTORS)
    for index, name in enumerate(names):
        if name != "all" and name not in COLLECTORS:
            raise _Invalid(
                f"{key}[{index}]", f"unknown collector {name!r} (known: all, {', '.join(known)})"
            )
        if name in names[:index]:
            raise _Invalid(f"{key}[{index}]", f"{name!r} is named twice")
    if "all" in names and len(names) > 1:
        raise _Invalid(key, '"all" already names every collector')
    return tuple(names)


def _parse_target(table: dict[str, Any], key: str, modules: Mapping[str, Module]) -> Target:
    _check_keys(
        table,
        (
            "name",
            "address",
            "module",
            "timeout",
            "labels",
            "xhttp_prom_url",
            "rtpengine_metrics_url",
        ),
        key,
    )
    for required in ("name", "address"):
        if required not in table:
            raise _Invalid(f"{key}.{required}", "missing")
    name = _string(table["name"], f"{key}.name", MAX_NAME_LENGTH)
    if not _TARGET_NAME.fullmatch(name):
        if ":" in name or "/" in name:
            raise _Invalid(
                f"{key}.name",
                f"{name!r} looks like an address; a name has no ':' "
                "or '/' so that it cannot be mistaken for one",
            )
        raise _Invalid(f"{key}.name", f"{name!r}: use letters, digits, '_', '.' and '-'")
    return Target(
        name=name,
        address=_address(table["address"], f"{key}.address"),
        module=_module_reference(table.get("module"), f"{key}.module", modules),
        timeout=(
            None
            if "timeout" not in table
            else _seconds(table["timeout"], f"{key}.timeout", MAX_TIMEOUT)
        ),
        labels=MappingProxyType(_parse_labels(table.get("labels", {}), f"{key}.labels")),
        xhttp_prom_url=_url(table.get("xhttp_prom_url"), f"{key}.xhttp_prom_url"),
        rtpengine_metrics_url=_url(
            table.get("rtpengine_metrics_url"), f"{key}.rtpengine_metrics_url"
        ),
    )


def _parse_labels(value: object, key: str) -> dict[str, str]:
    table = _table(value, key)
    if len(table) > MAX_LABELS:
        raise _Invalid(key, f"{len(table)} labels, at most {MAX_LABELS}")
    labels: dict[str, str] = {}
    for name, label_value in table.items():
        label_key = f"{key}.{_key_part(name)}"
        _check_name(name, label_key, _LABEL_NAME, "a label name")
        if name.startswith("__"):
            raise _Invalid(label_key, "names starting with '__' are reserved for Prometheus")
        labels[name] = _string(label_value, label_key, MAX_LABEL_VALUE_LENGTH, allow_empty=True)
    return labels


def _parse_allow(table: dict[str, Any], key: str, modules: Mapping[str, Module]) -> AllowRule:
    _check_keys(table, ("address", "module"), key)
    if "address" not in table:
        raise _Invalid(f"{key}.address", "missing")
    pattern = _string(table["address"], f"{key}.address", MAX_STRING_LENGTH)
    module = _module_reference(table.get("module"), f"{key}.module", modules)
    try:
        return _parse_pattern(pattern, module)
    except ValueError as exc:
        raise _Invalid(f"{key}.address", str(exc)) from None


def _parse_pattern(pattern: str, module: str | None) -> AllowRule:
    if any(ch.isspace() or not ch.isprintable() for ch in pattern):
        raise ValueError("whitespace or control characters in the pattern")
    protocol, sep, rest = pattern.partition(":")
    transport = PROTOCOLS.get(protocol.lower()) if sep else None
    if transport is None:
        raise ValueError(
            f"{pattern!r}: a pattern starts with its transport: tcp:, udp:, unix: or unixd:"
        )
    if transport in ("unix", "unixd"):
        _check_unix_path(rest)
        if "**" in rest:
            raise ValueError(f"{pattern!r}: '**' means nothing here; '*' never crosses '/'")
        return AllowRule(
            pattern=pattern,
            transport=transport,
            module=module,
            path_pattern=rest,
            _regex=_glob_regex(rest, "/"),
        )
    host, port_text = _split_host_port(rest, pattern)
    port = _pattern_port(port_text, pattern)
    if host.startswith("["):
        network = _network(host[1:-1], pattern)
        if network.version == 4:
            raise ValueError(f"{pattern!r}: IPv4 networks go without brackets")
        return AllowRule(
            pattern=pattern, transport=transport, module=module, network=network, port=port
        )
    if host[:1].isdigit() and all(ch.isdigit() or ch in "./" for ch in host):
        return AllowRule(
            pattern=pattern,
            transport=transport,
            module=module,
            network=_network(host, pattern),
            port=port,
        )
    host = host.lower()
    if not _HOST_PATTERN.fullmatch(host) or ".." in host or len(host) > 253:
        raise ValueError(f"{pattern!r}: bad host name pattern {host!r}")
    labels = host.split(".")
    if any(label.isdigit() for label in labels) and all(
        label.isdigit() or label == "*" for label in labels
    ):
        raise ValueError(
            f"{pattern!r}: a glob over IPv4 addresses; write a network such as 10.0.0.0/24"
        )
    return AllowRule(
        pattern=pattern,
        transport=transport,
        module=module,
        host_pattern=host,
        port=port,
        _regex=_glob_regex(host, "."),
    )


def _split_host_port(rest: str, pattern: str) -> tuple[str, str]:
    if rest.startswith("["):
        inside, bracket, tail = rest.partition("]")
        if not bracket:
            raise ValueError(f"{pattern!r}: missing ']'")
        if tail.startswith("/"):
            raise ValueError(
                f"{pattern!r}: put the prefix length inside the brackets, "
                "as in tcp:[fd00::/64]:2046"
            )
        if not tail.startswith(":"):
            raise ValueError(f"{pattern!r}: expected ':PORT' after ']'")
        return inside + "]", tail[1:]
    host, sep, port_text = rest.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{pattern!r}: expected HOST:PORT (the port may be '*')")
    if ":" in host:
        raise ValueError(f"{pattern!r}: IPv6 networks go in brackets, as in tcp:[fd00::/64]:2046")
    return host, port_text


def _pattern_port(text: str, pattern: str) -> int | None:
    if text == "*":
        return None
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise ValueError(f"{pattern!r}: bad port {text!r} (1-65535 or '*')")
    return int(text)


def _network(text: str, pattern: str) -> IPNetwork:
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise ValueError(f"{pattern!r}: bad network {text!r}: {exc}") from None
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_IPV4_MAPPED):
        raise ValueError(f"{pattern!r}: write IPv4-mapped ranges as IPv4 networks")
    return network


def _glob_regex(glob: str, separator: str) -> re.Pattern[str]:
    parts = (f"[^{re.escape(separator)}]+" if ch == "*" else re.escape(ch) for ch in glob)
    return re.compile("".join(parts))


def _looks_like_ipv4(host: str) -> bool:
    """True for anything the C library would read as an IPv4 address (`10.1`, `0x7f000001`)."""
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True


def _check_unix_path(path: str) -> None:
    if not path.startswith("/"):
        raise ValueError(f"unix socket path must be absolute: {path!r}")
    for segment in path.split("/")[1:]:
        if segment in ("", ".", ".."):
            raise ValueError(f"unix socket path with an empty, '.' or '..' segment: {path!r}")


# -- typed values ------------------------------------------------------------------------------


def _describe(value: object) -> str:
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a float",
        str: "a string",
        list: "an array",
        dict: "a table",
    }
    return names.get(type(value), "a date/time")


def _key_part(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else json.dumps(name)


def _check_keys(table: Mapping[str, Any], known: Sequence[str], key: str) -> None:
    for name in table:
        if name not in known:
            path = f"{key}.{_key_part(name)}" if key else _key_part(name)
            raise _Invalid(path, f"unknown key (known: {', '.join(known)})")


def _table(value: object, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Invalid(key, f"expected a table, got {_describe(value)}")
    return value


def _tables(value: object, key: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise _Invalid(key, f"expected an array of tables ([[{key}]]), got {_describe(value)}")
    return [_table(item, f"{key}[{index}]") for index, item in enumerate(value)]


def _string(
    value: object, key: str, max_length: int = MAX_STRING_LENGTH, *, allow_empty: bool = False
) -> str:
    if not isinstance(value, str):
        raise _Invalid(key, f"expected a string, got {_describe(value)}")
    if not value and not allow_empty:
        raise _Invalid(key, "empty")
    if len(value) > max_length:
        raise _Invalid(key, f"{len(value)} characters, at most {max_length}")
    if "\x00" in value:
        raise _Invalid(key, "NUL character")
    return value


def _strings(value: object, key: str) -> list[str]:
    if not isinstance(value, list):
        raise _Invalid(key, f"expected an array of strings, got {_describe(value)}")
    if len(value) > MAX_LIST_LENGTH:
        raise _Invalid(key, f"{len(value)} entries, at most {MAX_LIST_LENGTH}")
    return [_string(item, f"{key}[{index}]") for index, item in enumerate(value)]


def _integer(value: object, key: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(key, f"expected an integer, got {_describe(value)}")
    if not low <= value <= high:
        raise _Invalid(key, f"{value} is out of range ({low}-{high})")
    return value


def _seconds(value: object, key: str, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(key, f"expected a number of seconds, got {_describe(value)}")
    seconds = float(value)
    if not (math.isfinite(seconds) and 0 < seconds <= high):
        raise _Invalid(key, f"{value} is out of range (more than 0, at most {high:g})")
    return seconds


def _check_name(name: str, key: str, pattern: re.Pattern[str], what: str) -> None:
    if len(name) > MAX_NAME_LENGTH:
        raise _Invalid(key, f"{len(name)} characters, at most {MAX_NAME_LENGTH}")
    if not pattern.fullmatch(name):
        raise _Invalid(key, f"{name!r} is not {what}")


def _address(value: object, key: str) -> Address:
    try:
        return parse_address(_string(value, key))
    except AddressError as exc:
        raise _Invalid(key, str(exc)) from None


def _module_reference(value: object, key: str, modules: Mapping[str, Module]) -> str | None:
    if value is None:
        return None
    name = _string(value, key, MAX_NAME_LENGTH)
    if name not in modules:
        raise _Invalid(key, f"unknown module {name!r} (defined: {', '.join(modules)})")
    return name


def _url(value: object, key: str) -> str | None:
    # Messages never repeat the URL: it may carry a password.
    if value is None:
        return None
    url = _string(value, key, MAX_URL_LENGTH)
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise _Invalid(key, "whitespace or control characters in the URL")
    try:
        parts = urllib.parse.urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        raise _Invalid(key, "not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise _Invalid(key, "the URL scheme must be http or https")
    if not parts.hostname or not port_ok:
        raise _Invalid(key, "the URL needs a host (and a valid port, if any)")
    return url


# -- collector options -------------------------------------------------------------------------


def _collector_option_types() -> dict[str, Any]:
    hints = typing.get_type_hints(CollectorOptions)
    return {f.name: hints[f.name] for f in dataclasses.fields(CollectorOptions)}


def _convert(value: object, hint: Any, key: str) -> Any:
    """Converts a TOML value to a collector option's declared type."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        # Optional options: TOML has no null, so a given value is of the other type.
        (hint,) = (arg for arg in args if arg is not type(None))
        return _convert(value, hint, key)
    if hint is bool:
        if not isinstance(value, bool):
            raise _Invalid(key, f"expected a boolean, got {_describe(value)}")
        return value
    if hint is int:
        return _integer(value, key, -(2**31), 2**31 - 1)
    if hint is float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise _Invalid(key, f"expected a finite number, got {_describe(value)}")
        return float(value)
    if hint is str:
        return _string(value, key)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        if not isinstance(value, list):
            raise _Invalid(key, f"expected an array, got {_describe(value)}")
        if len(value) > MAX_LIST_LENGTH:
            raise _Invalid(key, f"{len(value)} entries, at most {MAX_LIST_LENGTH}")
        return tuple(_convert(item, args[0], f"{key}[{index}]") for index, item in enumerate(value))
    if isinstance(origin, type) and issubclass(origin, Mapping):
        key_type, value_type = args
        table = _table(value, key)
        if len(table) > MAX_LIST_LENGTH:
            raise _Invalid(key, f"{len(table)} entries, at most {MAX_LIST_LENGTH}")
        converted = {
            _mapping_key(name, key_type, key): _convert(
                item, value_type, f"{key}.{_key_part(name)}"
            )
            for name, item in table.items()
        }
        return MappingProxyType(converted)
    raise TypeError(f"collector option type {hint!r} has no TOML form")


def _mapping_key(name: str, key_type: Any, key: str) -> object:
    if key_type is int:
        if not _INTEGER_KEY.fullmatch(name):
            raise _Invalid(f"{key}.{_key_part(name)}", "the key must be an integer")
        return int(name)
    return _string(name, f"{key}.{_key_part(name)}")


# -- resolving a /probe target -----------------------------------------------------------------


async def resolve_target(
    config: Config,
    target: str,
    module: str | None = None,
    *,
    resolve_timeout: float = DEFAULT_RESOLVE_TIMEOUT,
) -> ResolvedTarget:
    """Finds what `/probe?target=...&module=...` means under `config`.

    The module: `module` if given, else the listed target's, else the allow rule's, else
    "default". Raises UnknownModule for an undefined module, TargetRejected when the target is
    neither listed nor allowed (no connection was made), and TargetResolveError when a host
    name that a rule allows does not resolve within `resolve_timeout` seconds.
    """
    if module is not None and module not in config.modules:
        raise UnknownModule(module)
    listed = config.targets.get(target)
    if listed is not None:
        return ResolvedTarget(listed, config.modules[module or listed.module or DEFAULT_MODULE])
    requested = _requested_address(target)
    rule, address = await _allowed(config.allow, requested, resolve_timeout)
    allowed = Target(name=str(requested), address=address)
    return ResolvedTarget(allowed, config.modules[module or rule.module or DEFAULT_MODULE], rule)


# Every refused host name gets this one answer: whether the name resolves, and to what, is
# for the exporter's log only (a client must not use the exporter as a DNS oracle).
_NO_NAME_RULE = "no allow rule matches this host name"


def _rejected(target: str, reason: str, detail: str | None = None) -> TargetRejected:
    return TargetRejected(
        f"target {_short(target)}: {reason}", detail and f"target {_short(target)}: {detail}"
    )


def _short(text: str) -> str:
    shown = text if len(text) <= 80 else text[:77] + "..."
    return json.dumps(shown)  # quoted and escaped: one line whatever the input


def _requested_address(target: str) -> Address:
    """Parses an unlisted target, refusing every form that could mean something else."""
    if not target:
        raise _rejected(target, "empty")
    if len(target) > MAX_TARGET_LENGTH:
        raise _rejected(target, f"longer than {MAX_TARGET_LENGTH} characters")
    if not target.isascii() or any(ch.isspace() or not ch.isprintable() for ch in target):
        raise _rejected(target, "non-ASCII, whitespace or control characters")
    if "%" in target:
        raise _rejected(target, "percent-encoded characters left after decoding")
    if ":" not in target and "/" not in target:
        raise _rejected(target, "not a listed target name, and not an address")
    try:
        address = parse_address(target)
    except AddressError as exc:
        raise _rejected(target, str(exc)) from None
    if address.path is not None:
        try:
            _check_unix_path(address.path)
        except ValueError as exc:
            raise _rejected(target, str(exc)) from None
    elif (
        address.host is not None
        and _ip_literal(address.host) is None
        and _looks_like_ipv4(address.host)
    ):
        raise _rejected(target, "a numeric host that is not a dotted-quad IPv4 address")
    return address


async def _allowed(
    rules: Sequence[AllowRule], address: Address, resolve_timeout: float
) -> tuple[AllowRule, Address]:
    """The first rule (in file order) allowing `address`, and the address to connect to."""
    candidates = [
        rule
        for rule in rules
        if rule.transport == address.transport and (rule.port is None or rule.port == address.port)
    ]
    target = str(address)
    if address.path is not None:
        for rule in candidates:
            if rule.matches_path(address.path):
                return rule, address
        raise _rejected(target, "no allow rule matches this path")
    assert address.host is not None
    literal = _ip_literal(address.host)
    if literal is not None:
        for rule in candidates:
            if rule.contains(literal):
                return rule, dataclasses.replace(address, host=str(literal))
        raise _rejected(target, "no allow rule covers this address")
    name_rule = next((rule for rule in candidates if rule.matches_name(address.host)), None)
    if name_rule is None and not any(rule.network is not None for rule in candidates):
        raise _rejected(target, _NO_NAME_RULE)
    try:
        resolved = await _resolve(address, resolve_timeout)
    except (OSError, TimeoutError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else _os_reason(exc)
        if name_rule is not None:
            raise TargetResolveError(f"cannot resolve {address.host}: {reason}") from None
        raise _rejected(
            target,
            _NO_NAME_RULE,
            f"the name does not resolve ({reason}), so no network rule can allow it",
        ) from None
    for rule in candidates:
        if rule.matches_name(address.host):
            return rule, dataclasses.replace(address, host=str(resolved[0]))
        for ip in resolved:
            if rule.contains(ip):
                return rule, dataclasses.replace(address, host=str(ip))
    shown = ", ".join(str(ip) for ip in resolved[:4])
    raise _rejected(target, _NO_NAME_RULE, f"resolves to {shown}, which no allow rule covers")


class _Lookups:
    """Name lookups for allow rules, on threads of their own.

    getaddrinfo blocks a thread until the resolver answers, whatever the caller's timeout.
    Names in /probe requests come from outside, so their lookups must not starve the default
    executor (config reloads, bcrypt checks), and a flood of them fails fast instead of queueing.
    """

    def __init__(self, threads: int, max_pending: int) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(threads, "resolve")
        self._max_pending = max_pending
        self._pending = 0

    async def getaddrinfo(
        self, host: str, port: int | None, kind: int, timeout: float
    ) -> list[Any]:
        if self._pending >= self._max_pending:
            raise OSError(f"{self._pending} name lookups already in progress")
        self._pending += 1
        try:
            async with asyncio.timeout(timeout):
                return await self.lookup(host, port, kind)
        finally:
            self._pending -= 1

    async def lookup(self, host: str, port: int | None, kind: int) -> list[Any]:
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, functools.partial(socket.getaddrinfo, host, port, type=kind)
        )


LOOKUPS = _Lookups(threads=4, max_pending=64)


async def _resolve(address: Address, resolve_timeout: float) -> list[IPAddress]:
    """The addresses a host name resolves to, in the resolver's order (OSError if none)."""
    assert address.host is not None
    kind = socket.SOCK_STREAM if address.is_stream else socket.SOCK_DGRAM
    infos = await LOOKUPS.getaddrinfo(address.host, address.port, kind, resolve_timeout)
    resolved: list[IPAddress] = []
    for family, _, _, _, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        ip = _ip_literal(str(sockaddr[0]))
        if ip is not None and ip not in resolved:
            resolved.append(ip)
    if not resolved:
        raise OSError("no IPv4 or IPv6 address")
    return resolved


def _ip_literal(host: str) -> IPAddress | None:
    """The IP address a host string denotes literally, IPv4-mapped IPv6 read as IPv4."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__
