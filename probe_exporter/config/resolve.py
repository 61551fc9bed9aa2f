"""Resolving a /probe target: a listed name, or an address that an allow rule admits.

A host name is probed only once it resolves (getaddrinfo on threads of its own, bounded in
time), and the connection goes to the address that was checked (no second lookup, so no DNS
rebinding). Network rules judge the resolved address, so a name cannot reach outside them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
import json
import socket
from collections.abc import Sequence
from typing import Any

from ..binrpc.address import Address, AddressError, parse_address
from .errors import TargetRejected, TargetResolveError, UnknownModule
from .model import (
    DEFAULT_MODULE,
    AllowRule,
    Config,
    IPAddress,
    ResolvedTarget,
    Target,
    check_unix_path,
    ip_literal,
    looks_like_ipv4,
)

__all__ = ["DEFAULT_RESOLVE_TIMEOUT", "LOOKUPS", "MAX_TARGET_LENGTH", "resolve_target"]

DEFAULT_RESOLVE_TIMEOUT = 5.0
MAX_TARGET_LENGTH = 256  # a /probe target, a name or an address


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
            check_unix_path(address.path)
        except ValueError as exc:
            raise _rejected(target, str(exc)) from None
    elif (
        address.host is not None
        and ip_literal(address.host) is None
        and looks_like_ipv4(address.host)
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
    literal = ip_literal(address.host)
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
        ip = ip_literal(str(sockaddr[0]))
        if ip is not None and ip not in resolved:
            resolved.append(ip)
    if not resolved:
        raise OSError("no IPv4 or IPv6 address")
    return resolved


def _os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__
