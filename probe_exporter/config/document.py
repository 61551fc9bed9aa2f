"""The schema of targets.toml, and what a valid document builds (a Config).

Each table is a `StrictModel`; checks that span tables (module references, names and patterns
given twice, the pool's per-target limit) run over the decoded document beside the schema, so
that one pass reports every error of the file. `locate` finds the line of a key path in the
text for the common layouts (`[[targets]]` headers, `key = value` lines); a path it cannot
place is reported without a line rather than with a wrong one.
"""

from __future__ import annotations

import dataclasses
import re
import urllib.parse
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import AfterValidator

from ..binrpc.address import Address, AddressError, has_protocol, parse_address
from ..collectors import COLLECTORS, CollectorOptions
from ..limits import DEFAULT_LIMITS, ProbeLimits
from .errors import MAX_NAME_LENGTH
from .model import (
    DEFAULT_MODULE,
    DEFAULT_MODULE_TIMEOUT,
    AllowRule,
    Config,
    Module,
    PoolSettings,
    Target,
    parse_pattern,
)
from .schema import (
    Issue,
    Loc,
    StrictModel,
    checked,
    describe,
    fail,
    integer,
    key_path,
    number,
    string,
    unique,
)

__all__ = ["TargetsDocument", "build_config", "check_document", "locate", "warnings"]

MAX_TIMEOUT = 300.0
MAX_IDLE_TTL = 86400.0
MAX_CONNECTIONS = 65536
# Upper bounds of a module's limits: far beyond any Kamailio's replies, below what breaks.
MAX_REPLY_BYTES = 1 << 30
MAX_PROBE_BYTES = 1 << 30
MAX_VALUES = 10**8
MAX_STRING_LENGTH = 256  # addresses, patterns and collector option strings
MAX_LABEL_VALUE_LENGTH = 1024
MAX_URL_LENGTH = 2048
MAX_LABELS = 64
MAX_LIST_LENGTH = 1024

_TARGET_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_MODULE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INTEGER_KEY = re.compile(r"-?[0-9]{1,10}")


# -- field checks ------------------------------------------------------------------------------


def _seconds(high: float) -> Callable[[object], float]:
    return number(high, what="a number of seconds")


def _array(what: str, max_length: int = MAX_LIST_LENGTH) -> Callable[[object], list[Any]]:
    def check(value: object) -> list[Any]:
        if not isinstance(value, list):
            fail(f"expected {what}, got {describe(value)}")
        if len(value) > max_length:
            fail(f"{len(value)} entries, at most {max_length}")
        return value

    return check


def _table(max_length: int, what: str = "entries") -> Callable[[object], dict[str, Any]]:
    def check(value: object) -> dict[str, Any]:
        if not isinstance(value, dict):
            fail(f"expected a table, got {describe(value)}")
        if len(value) > max_length:
            fail(f"{len(value)} {what}, at most {max_length}")
        return value

    return check


_name_string = string(MAX_NAME_LENGTH)
_short_string = string(MAX_STRING_LENGTH)


def _name(pattern: re.Pattern[str], what: str) -> Callable[[object], str]:
    def check(name: object) -> str:
        text = _name_string(name)
        if not pattern.fullmatch(text):
            fail(f"{text!r} is not {what}")
        return text

    return check


_label_name_string = _name(_LABEL_NAME, "a label name")


def _label_name(name: object) -> str:
    text = _label_name_string(name)
    if text.startswith("__"):
        fail("names starting with '__' are reserved for Prometheus")
    return text


def _target_name(value: object) -> str:
    name = _name_string(value)
    if not _TARGET_NAME.fullmatch(name):
        if ":" in name or "/" in name:
            fail(
                f"{name!r} looks like an address; a name has no ':' "
                "or '/' so that it cannot be mistaken for one"
            )
        fail(f"{name!r}: use letters, digits, '_', '.' and '-'")
    return name


def _address(value: object) -> Address:
    try:
        return parse_address(_short_string(value))
    except AddressError as exc:
        fail(str(exc))


def _pattern(value: object) -> AllowRule:
    pattern = _short_string(value)
    try:
        return parse_pattern(pattern, None)
    except ValueError as exc:
        fail(str(exc))


_url_string = string(MAX_URL_LENGTH)


def _url(value: object) -> str:
    # Messages never repeat the URL: it may carry a password.
    url = _url_string(value)
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        fail("whitespace or control characters in the URL")
    try:
        parts = urllib.parse.urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        fail("not a valid URL")
    if parts.scheme not in ("http", "https"):
        fail("the URL scheme must be http or https")
    if not parts.hostname or not port_ok:
        fail("the URL needs a host (and a valid port, if any)")
    return url


def _collector(name: object) -> str:
    text = _short_string(name)
    if text != "all" and text not in COLLECTORS:
        fail(f"unknown collector {text!r} (known: all, {', '.join(sorted(COLLECTORS))})")
    return text


def _collector_set(names: tuple[str, ...]) -> tuple[str, ...]:
    if not names:
        fail('empty: name collectors, or "all"')
    unique(names)
    if "all" in names and len(names) > 1:
        fail('"all" already names every collector')
    return names


def _unique_strings(names: tuple[str, ...]) -> tuple[str, ...]:
    unique(names)
    return names


def _set_id(key: object) -> int:
    if not isinstance(key, str) or not _INTEGER_KEY.fullmatch(key):
        fail("the key must be an integer")
    return int(key)


def _set_names_table(value: object) -> dict[str, Any]:
    table = _table(MAX_LIST_LENGTH)(value)
    first: dict[int, str] = {}
    for key in table:
        if isinstance(key, str) and _INTEGER_KEY.fullmatch(key):
            if int(key) in first:
                fail(f"keys {first[int(key)]!r} and {key!r} are both set {int(key)}")
            first[int(key)] = key
    return table


Seconds = Annotated[float, checked(_seconds(MAX_TIMEOUT))]
OptionString = Annotated[str, checked(string(MAX_STRING_LENGTH))]
OptionStrings = Annotated[
    tuple[OptionString, ...],
    checked(_array("an array of strings")),
    AfterValidator(_unique_strings),
]
ModuleName = Annotated[str, checked(_name(_MODULE_NAME, "a module name"))]
ModuleReference = Annotated[str, checked(string(MAX_NAME_LENGTH))]
Url = Annotated[str, checked(_url)]


# -- the tables --------------------------------------------------------------------------------


_POOL = PoolSettings()


class PoolDocument(StrictModel):
    idle_ttl: Annotated[float, checked(_seconds(MAX_IDLE_TTL))] = _POOL.idle_ttl
    max_connections: Annotated[int, checked(integer(1, MAX_CONNECTIONS))] = _POOL.max_connections
    per_target: Annotated[int, checked(integer(1, MAX_CONNECTIONS))] = _POOL.per_target
    max_adhoc_connections: Annotated[int, checked(integer(1, MAX_CONNECTIONS))] = (
        _POOL.max_adhoc_connections
    )


class ModuleDocument(StrictModel):
    """A module: its collectors, timeout and collector options (CollectorOptions' fields)."""

    collectors: Annotated[
        tuple[Annotated[str, checked(_collector)], ...],
        checked(_array("an array of strings")),
        AfterValidator(_collector_set),
    ] = ("all",)
    timeout: Seconds = DEFAULT_MODULE_TIMEOUT
    dialog_profiles: OptionStrings = ()
    dispatcher_set_names: Annotated[
        dict[Annotated[int, checked(_set_id)], OptionString], checked(_set_names_table)
    ] = {}
    stats_groups: OptionStrings = ()
    max_reply_bytes: Annotated[int, checked(integer(1024, MAX_REPLY_BYTES))] = (
        DEFAULT_LIMITS.max_reply_bytes
    )
    max_probe_bytes: Annotated[int, checked(integer(1024, MAX_PROBE_BYTES))] = (
        DEFAULT_LIMITS.max_probe_bytes
    )
    max_values: Annotated[int, checked(integer(1, MAX_VALUES))] = DEFAULT_LIMITS.max_values
    max_samples: Annotated[int, checked(integer(1, MAX_VALUES))] = DEFAULT_LIMITS.max_samples

    def limits(self) -> ProbeLimits:
        return ProbeLimits(
            max_reply_bytes=self.max_reply_bytes,
            max_probe_bytes=self.max_probe_bytes,
            max_values=self.max_values,
            max_samples=self.max_samples,
        )

    def options(self) -> CollectorOptions:
        return CollectorOptions(
            dialog_profiles=self.dialog_profiles,
            dispatcher_set_names=MappingProxyType(dict(self.dispatcher_set_names)),
            stats_groups=self.stats_groups,
        )


class TargetDocument(StrictModel):
    name: Annotated[str, checked(_target_name)]
    address: Annotated[Address, checked(_address)]
    module: ModuleReference | None = None
    timeout: Seconds | None = None
    labels: Annotated[
        dict[
            Annotated[str, checked(_label_name)],
            Annotated[str, checked(string(MAX_LABEL_VALUE_LENGTH, allow_empty=True))],
        ],
        checked(_table(MAX_LABELS, "labels")),
    ] = {}
    xhttp_prom_url: Url | None = None
    rtpengine_metrics_url: Url | None = None


class AllowDocument(StrictModel):
    address: Annotated[AllowRule, checked(_pattern)]
    module: ModuleReference | None = None


class TargetsDocument(StrictModel):
    pool: PoolDocument = PoolDocument()
    modules: dict[ModuleName, ModuleDocument] = {}
    targets: Annotated[
        list[TargetDocument], checked(_array("an array of tables ([[targets]])", 10**7))
    ] = []
    allow: Annotated[
        list[AllowDocument], checked(_array("an array of tables ([[allow]])", 10**7))
    ] = []


# -- checks across tables ----------------------------------------------------------------------


def _tables(document: Mapping[str, Any], section: str) -> list[tuple[int, Mapping[str, Any]]]:
    value = document.get(section)
    if not isinstance(value, list):
        return []
    return [(index, table) for index, table in enumerate(value) if isinstance(table, dict)]


def check_document(document: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """The errors that span tables, found in the decoded document whatever else is wrong."""
    found: list[tuple[Loc, str]] = []
    pool = document.get("pool")
    if isinstance(pool, dict):
        most = pool.get("max_connections", _POOL.max_connections)
        each = pool.get("per_target", _POOL.per_target)
        valid = range(1, MAX_CONNECTIONS + 1)
        in_range = type(most) is int and type(each) is int and most in valid and each in valid
        if in_range and each > most:
            found.append(
                (("pool", "per_target"), f"{each} is more than pool.max_connections ({most})")
            )
    modules = document.get("modules")
    defined = list(modules) if isinstance(modules, dict) else []
    if DEFAULT_MODULE not in defined:
        defined.append(DEFAULT_MODULE)
    first: dict[tuple[str, str], int] = {}
    for section, unique_key, what in (("targets", "name", "name"), ("allow", "address", "pattern")):
        for index, table in _tables(document, section):
            module = table.get("module")
            if isinstance(module, str) and module and module not in defined:
                found.append(
                    (
                        (section, index, "module"),
                        f"unknown module {module!r} (defined: {', '.join(defined)})",
                    )
                )
            value = table.get(unique_key)
            if not isinstance(value, str):
                continue
            earlier = first.setdefault((section, value), index)
            if earlier != index:
                found.append(
                    (
                        (section, index, unique_key),
                        f"{value!r} is already the {what} of {section}[{earlier}]",
                    )
                )
    return found


def warnings(document: Mapping[str, Any], locate: Callable[[Loc], int | None]) -> list[str]:
    """What is valid but probably not meant, one line each."""
    found = []
    for index, table in _tables(document, "targets"):
        address = table.get("address")
        if isinstance(address, str) and not has_protocol(address):
            issue = Issue(
                key_path(("targets", index, "address")),
                f"{address!r} names no protocol, so Kamailio and the exporter read it as UDP; "
                f"write udp:{address}, or tcp:{address} for a TCP ctl socket",
                locate(("targets", index, "address")),
            )
            found.append(str(issue))
    return found


def build_config(document: TargetsDocument, sha256: str, warned: list[str]) -> Config:
    modules = {
        name: Module(name, table.collectors, table.timeout, table.options(), table.limits())
        for name, table in document.modules.items()
    }
    modules.setdefault(
        DEFAULT_MODULE, Module(DEFAULT_MODULE, ("all",), DEFAULT_MODULE_TIMEOUT, CollectorOptions())
    )
    targets = {
        table.name: Target(
            name=table.name,
            address=table.address,
            module=table.module,
            timeout=table.timeout,
            labels=MappingProxyType(table.labels),
            xhttp_prom_url=table.xhttp_prom_url,
            rtpengine_metrics_url=table.rtpengine_metrics_url,
        )
        for table in document.targets
    }
    pool = document.pool
    return Config(
        pool=PoolSettings(
            pool.idle_ttl, pool.max_connections, pool.per_target, pool.max_adhoc_connections
        ),
        modules=MappingProxyType(modules),
        targets=MappingProxyType(targets),
        allow=tuple(
            dataclasses.replace(table.address, module=table.module) for table in document.allow
        ),
        sha256=sha256,
        warnings=tuple(warned),
    )


# -- lines -------------------------------------------------------------------------------------

_HEADER = re.compile(r"\s*(\[\[?)\s*([^\[\]#]+?)\s*\]\]?\s*(#.*)?")


def locate(text: str, loc: Loc) -> int | None:
    """The line (from 1) of key path `loc` in TOML text, or None when it is not plain to see."""
    lines = text.splitlines()
    # Where each table starts, and the key path it opens.
    starts: list[tuple[int, Loc]] = [(-1, ())]  # the top level starts before line 0
    counts: dict[tuple[str, ...], int] = {}
    for row, line in enumerate(lines):
        header = _HEADER.fullmatch(line)
        if header is None:
            continue
        parts = tuple(part.strip().strip("\"'") for part in header.group(2).split("."))
        if header.group(1) == "[[":
            counts[parts] = counts.get(parts, -1) + 1
            starts.append((row, (*parts, counts[parts])))
        else:
            starts.append((row, parts))
    best = max(
        (start for start in starts if loc[: len(start[1])] == start[1]),
        key=lambda start: len(start[1]),
    )
    begin, opened = best
    rest = loc[len(opened) :]
    table_line = begin + 1 if opened else None
    if not rest:
        return table_line
    end = next((row for row, _ in starts if row > begin), len(lines))
    key = re.compile(rf"\s*[\"']?{re.escape(str(rest[0]))}[\"']?\s*[=.]")
    for row in range(begin + 1, end):
        if key.match(lines[row]):
            return row + 1
    return table_line
