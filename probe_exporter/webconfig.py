"""Serving the web config (`--web.config.file`): reloads, basic auth and TLS handshakes.

The file's format and validation are in config/web_config.py (WebConfig, TLSSettings and
WebConfigError are importable from here as well).

Unlike the exporter-toolkit, the health endpoints (`/-/healthy`, `/-/ready`) stay open when
basic auth is on, so that Kubernetes probes need no credentials; `web_middleware` takes the
exempt set.

The file, and the certificate, key and CA files it names, are checked for changes at most once a
second (on requests and on TLS handshakes): certificate and password rotation needs no restart.
A changed file that does not load keeps the previous config in force. Turning TLS on or off
needs a restart. Passwords and hashes are never logged or put in error messages.

Basic auth resists floods and timing: a password that matched is remembered (as a keyed MAC),
so a client that knows it never waits for bcrypt again; bcrypt checks run one at a time, each
client address may have only a few waiting (a flood from one address is refused at once
without delaying others), identical credentials in flight share one check, and an unknown user
is checked against a dummy hash of the users' cost, so the answer takes as long as for a known
one.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
import ssl
import time
from collections.abc import Collection, Mapping
from pathlib import Path

import bcrypt
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from .config.web_config import TLSSettings, WebConfig, WebConfigError

__all__ = [
    "DEFAULT_AUTH_EXEMPT",
    "TLSSettings",
    "WebConfig",
    "WebConfigError",
    "WebConfigHolder",
    "web_middleware",
]

log = logging.getLogger(__name__)

DEFAULT_AUTH_EXEMPT: frozenset[str] = frozenset({"/-/healthy", "/-/ready"})
DEFAULT_CHECK_INTERVAL = 1.0
# bcrypt reads at most 72 bytes of a password; longer ones are cut as Go and htpasswd do.
_BCRYPT_MAX_PASSWORD = 72
# bcrypt checks (tens to hundreds of ms of CPU each, one at a time) waiting at most, per client
# address and in all: beyond them a check is refused at once rather than queued.
_MAX_BCRYPT_PER_CLIENT = 2
_MAX_BCRYPT_WAITING = 64
# The cost of the dummy hash when no user is configured.
_DEFAULT_BCRYPT_COST = 10


_Signature = tuple[tuple[int, int, int] | None, ...]


class WebConfigHolder:
    """The web config in force, re-read when the file or a file it names changes.

    Call `maybe_reload` often (the middleware does it on each request, and the context from
    `ssl_context` on each TLS handshake): it looks at the files at most once per
    `check_interval` seconds.
    """

    def __init__(
        self, path: str | os.PathLike[str] | None, *, check_interval: float = DEFAULT_CHECK_INTERVAL
    ) -> None:
        self.path = None if path is None else Path(path)
        self.check_interval = check_interval
        self.last_error: str | None = None
        self._signature: _Signature
        if self.path is None:
            self._config, self._tls_context, self._signature = WebConfig(), None, ()
        else:
            self._config, self._tls_context, self._signature = self._read(self.path)
        self._checked_at = time.monotonic()
        self._server_context: ssl.SSLContext | None = None
        # user -> (stored hash, MAC of the password that matched it): one bcrypt per password.
        self._verified: dict[str, tuple[bytes, bytes]] = {}
        self._mac_key = secrets.token_bytes(32)
        self._dummy_hash = _dummy_hash(self._config.basic_auth_users)
        self._checks = _BcryptChecks()

    @property
    def config(self) -> WebConfig:
        return self._config

    def maybe_reload(self) -> bool:
        """Reloads if a watched file changed (checked at most once per interval).

        Returns True when a new config took effect. A config that does not load is logged
        (once per distinct error), kept in `last_error`, and retried on the next check.
        """
        now = time.monotonic()
        if self.path is None or now - self._checked_at < self.check_interval:
            return False
        self._checked_at = now
        if self._stat_all(self._config.files) == self._signature:
            return False
        try:
            config, context, signature = self._read(self.path)
            if (config.tls is None) != (self._config.tls is None):
                raise WebConfigError("turning TLS on or off needs a restart")
        except WebConfigError as exc:
            if str(exc) != self.last_error:
                log.error("web config not reloaded, keeping the previous one: %s", exc)
            self.last_error = str(exc)
            return False
        self._config, self._signature, self.last_error = config, signature, None
        self._verified = {
            user: entry for user, entry in self._verified.items() if user in config.basic_auth_users
        }
        self._dummy_hash = _dummy_hash(config.basic_auth_users)
        if context is not None:
            self._tls_context = context
            if self._server_context is not None and config.tls is not None:
                config.tls.apply_connection_settings(self._server_context)
        log.info("web config reloaded from %s", self.path)
        return True

    def ssl_context(self) -> ssl.SSLContext | None:
        """The context to serve with (None for plain HTTP), the same object on every call.

        Each handshake first checks the files, then switches to the newest certificate, key,
        client CAs and ciphers; client auth type and versions apply from the next connection.
        """
        if self._tls_context is None:
            return None
        if self._server_context is None:
            self._server_context = self._tls_context
            self._server_context.sni_callback = self._on_client_hello
        return self._server_context

    async def check_basic_auth(self, authorization: str | None, client: str = "") -> bool:
        """Checks an Authorization header against `basic_auth_users`; `client` is the peer's
        address, whose bcrypt checks are bounded."""
        credentials = _parse_basic_credentials(authorization)
        if credentials is None:
            return False
        user, password = credentials
        stored = self._config.basic_auth_users.get(user)
        mac = hmac.new(self._mac_key, password, hashlib.sha256).digest()
        if stored is not None:
            cached = self._verified.get(user)
            if (
                cached is not None
                and hmac.compare_digest(cached[0], stored)
                and hmac.compare_digest(cached[1], mac)
            ):
                return True
        hashed = stored if stored is not None else self._dummy_hash
        matches = await self._checks.check(client, (user, hashed, mac), password, hashed)
        if matches and stored is not None and self._config.basic_auth_users.get(user) == stored:
            self._verified[user] = (stored, mac)
            return True
        return False

    def _on_client_hello(
        self, ssl_object: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext
    ) -> None:
        self.maybe_reload()
        if self._tls_context is not None and self._tls_context is not context:
            ssl_object.context = self._tls_context

    @classmethod
    def _read(cls, path: Path) -> tuple[WebConfig, ssl.SSLContext | None, _Signature]:
        # Each file is looked at before it is read: a change during the read is seen next time.
        config_stat = _stat(path)
        config = WebConfig.load(path)
        signature = (config_stat, *(_stat(name) for name in config.files))
        try:
            context = config.ssl_context()
        except WebConfigError as exc:
            raise WebConfigError(f"{path}: {exc}") from None
        return config, context, signature

    def _stat_all(self, files: tuple[str, ...]) -> _Signature:
        assert self.path is not None
        return (_stat(self.path), *(_stat(name) for name in files))


def web_middleware(
    holder: WebConfigHolder, auth_exempt: Collection[str] = DEFAULT_AUTH_EXEMPT
) -> Middleware:
    """An aiohttp middleware applying the web config: basic auth and response headers.

    `auth_exempt` holds paths as registered on the router (matched against the resource the
    request was routed to, so no spelling of a path reaches another handler unchecked).
    Headers go on every response a handler returns unprepared, on 401s and on HTTP
    exceptions; a handler's own value for a header wins.
    """
    exempt = frozenset(auth_exempt)

    @web.middleware
    async def web_config_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        holder.maybe_reload()
        config = holder.config
        if config.basic_auth_users and not _is_exempt(request, exempt):
            authorization = request.headers.get(hdrs.AUTHORIZATION)
            if not await holder.check_basic_auth(authorization, request.remote or ""):
                denied = web.Response(
                    status=401, text="Unauthorized\n", headers={hdrs.WWW_AUTHENTICATE: "Basic"}
                )
                _add_headers(denied, config.headers)
                return denied
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            _add_headers(exc, config.headers)
            raise
        if not response.prepared:
            _add_headers(response, config.headers)
        return response

    return web_config_middleware


def _is_exempt(request: web.Request, exempt: frozenset[str]) -> bool:
    resource = request.match_info.route.resource
    return resource is not None and resource.canonical in exempt


def _add_headers(response: web.StreamResponse, headers: Mapping[str, str]) -> None:
    for name, value in headers.items():
        response.headers.setdefault(name, value)


def _parse_basic_credentials(authorization: str | None) -> tuple[str, bytes] | None:
    if authorization is None:
        return None
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
        user_bytes, colon, password = decoded.partition(b":")
        user = user_bytes.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if colon else None


def _stat(name: str | os.PathLike[str]) -> tuple[int, int, int] | None:
    try:
        st = os.stat(name)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


class _BcryptChecks:
    """bcrypt checks, one at a time off the event loop, bounded per client address.

    A check runs as a task of its own: a client that goes away does not free its place
    before the work is done, and requests with identical credentials await the same task.
    """

    def __init__(self) -> None:
        self._lock = asyncio.Lock()  # FIFO: a waiting check is served in turn
        self._per_client: dict[str, int] = {}
        self._waiting = 0
        self._in_flight: dict[tuple[str, bytes, bytes], asyncio.Task[bool]] = {}

    async def check(
        self, client: str, key: tuple[str, bytes, bytes], password: bytes, hashed: bytes
    ) -> bool:
        task = self._in_flight.get(key)
        if task is None:
            if (
                self._per_client.get(client, 0) >= _MAX_BCRYPT_PER_CLIENT
                or self._waiting >= _MAX_BCRYPT_WAITING
            ):
                return False  # refused at once: this client (or everyone) has enough waiting
            self._per_client[client] = self._per_client.get(client, 0) + 1
            self._waiting += 1
            task = asyncio.create_task(self._run(client, key, password, hashed))
            self._in_flight[key] = task
        return await asyncio.shield(task)

    async def _run(
        self, client: str, key: tuple[str, bytes, bytes], password: bytes, hashed: bytes
    ) -> bool:
        try:
            async with self._lock:
                return await asyncio.get_running_loop().run_in_executor(
                    None, bcrypt.checkpw, password[:_BCRYPT_MAX_PASSWORD], hashed
                )
        finally:
            self._waiting -= 1
            left = self._per_client.pop(client) - 1
            if left:
                self._per_client[client] = left
            del self._in_flight[key]


def _dummy_hash(users: Mapping[str, bytes]) -> bytes:
    """A hash that no password matches, of the highest cost among the users' hashes: checking
    an unknown user against it takes as long as checking a known one."""
    cost = max((int(hashed[4:6]) for hashed in users.values()), default=_DEFAULT_BCRYPT_COST)
    # A real salt of that cost and the digest part of a cheap hash of random bytes.
    digest = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=4))[29:]
    return bcrypt.gensalt(rounds=cost) + digest
