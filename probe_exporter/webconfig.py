"""The web config file (`--web.config.file`) in the Prometheus exporter-toolkit format.

Supported keys (unknown keys are errors, as in the toolkit's strict YAML decoding):

    tls_server_config:
      cert_file, key_file            server certificate chain and key (PEM); both required
      client_auth_type               NoClientCert (default), VerifyClientCertIfGiven or
                                     RequireAndVerifyClientCert (mTLS)
      client_ca_file, client_ca      CA certificates for client certificates (file, or PEM text)
      min_version, max_version       TLS10, TLS11, TLS12 (min default), TLS13
      cipher_suites                  Go's names of TLS 1.2 suites, such as
                                     TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 (TLS 1.3 suites
                                     are always enabled, as in Go)
      prefer_server_cipher_suites    default true
    http_server_config:
      http2                          accepted for compatibility; this server speaks HTTP/1.1
      headers                        added to every response; the toolkit's set of headers:
                                     Strict-Transport-Security, X-Content-Type-Options (nosniff),
                                     X-Frame-Options (deny|sameorigin), X-XSS-Protection,
                                     Content-Security-Policy
    basic_auth_users:                user name -> bcrypt hash ($2a$, $2b$ or $2y$)

Keys of the toolkit that cannot be honoured exactly here are errors rather than silently
ignored: inline `cert`/`key`, `client_allowed_sans`, `curve_preferences`, `rate_limit`, and the
client auth types RequestClientCert and RequireAnyClientCert (Python's ssl module cannot ask
for a client certificate without verifying it). Relative file names are relative to the web
config file's directory.

Unlike the toolkit, the health endpoints (`/-/healthy`, `/-/ready`) stay open when basic auth is
on, so that Kubernetes probes need no credentials; `web_middleware` takes the exempt set.

The file, and the certificate, key and CA files it names, are checked for changes at most once a
second (on requests and on TLS handshakes): certificate and password rotation needs no restart.
A changed file that does not load keeps the previous config in force. Turning TLS on or off
needs a restart. Passwords and hashes are never logged or put in error messages.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import secrets
import ssl
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import bcrypt
import yaml
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

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

_CLIENT_AUTH_TYPES: Mapping[str, ssl.VerifyMode] = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_UNVERIFIED_CLIENT_AUTH_TYPES = frozenset(
    {"RequestClientCert", "RequireAnyClientCert", "RequireClientCert"}
)
_TLS_VERSIONS: Mapping[str, ssl.TLSVersion] = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# Go's crypto/tls names (tls.CipherSuites()) -> OpenSSL names. None: a TLS 1.3 suite, which
# neither Go nor OpenSSL lets a server switch off.
_CIPHER_SUITES: Mapping[str, str | None] = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_AES_128_GCM_SHA256": None,
    "TLS_AES_256_GCM_SHA384": None,
    "TLS_CHACHA20_POLY1305_SHA256": None,
}
# The toolkit's allowed headers, with the values allowed where it restricts them.
_HEADERS: Mapping[str, frozenset[str] | None] = {
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": frozenset({"nosniff"}),
    "X-Frame-Options": frozenset({"deny", "sameorigin"}),
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}
_UNSUPPORTED_TLS_KEYS: Mapping[str, str] = {
    "cert": "use cert_file",
    "key": "use key_file",
    "client_allowed_sans": "restrict clients with client_ca_file instead",
    "curve_preferences": "Python's ssl module cannot set a curve list",
}
_BCRYPT_HASH = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
# bcrypt reads at most 72 bytes of a password; longer ones are cut as Go and htpasswd do.
_BCRYPT_MAX_PASSWORD = 72
# Checks waiting for bcrypt at most (each costs tens of ms of CPU, one at a time).
_MAX_BCRYPT_WAITING = 16
# Checked when the user name is unknown, so that the answer takes as long as for a known one.
_DUMMY_HASH = b"$2b$10$X9PiPSe7okIH4T/taYQiO.hM2dANjAa1MwDM8S2qYAfZlesmrUO6i"


class WebConfigError(ValueError):
    """The web config file is invalid; the message names the key (never a secret)."""


@dataclass(frozen=True, slots=True)
class TLSSettings:
    """`tls_server_config`, with file names made absolute."""

    cert_file: str
    key_file: str
    client_auth_type: str = "NoClientCert"
    client_ca_file: str | None = None
    client_ca: str | None = None
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    max_version: ssl.TLSVersion | None = None
    cipher_suites: tuple[str, ...] = ()  # OpenSSL names
    prefer_server_cipher_suites: bool = True

    @property
    def files(self) -> tuple[str, ...]:
        """The files this config reads, watched for changes."""
        names = (self.cert_file, self.key_file, self.client_ca_file)
        return tuple(name for name in names if name is not None)

    def new_context(self) -> ssl.SSLContext:
        """A server context with the certificate, key and client CAs loaded."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.apply_connection_settings(context)
        if self.cipher_suites:
            try:
                context.set_ciphers(":".join(self.cipher_suites))
            except ssl.SSLError:
                raise WebConfigError(
                    "tls_server_config.cipher_suites: none of the suites is available"
                ) from None
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise WebConfigError(
                f"tls_server_config: cannot load cert_file {self.cert_file} with key_file "
                f"{self.key_file}: {_reason(exc)}"
            ) from None
        try:
            if self.client_ca_file is not None:
                context.load_verify_locations(cafile=self.client_ca_file)
            if self.client_ca is not None:
                context.load_verify_locations(cadata=self.client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise WebConfigError(
                f"tls_server_config: cannot load the client CA certificates: {_reason(exc)}"
            ) from None
        return context

    def apply_connection_settings(self, context: ssl.SSLContext) -> None:
        """Settings that OpenSSL copies into each connection when it is accepted."""
        context.verify_mode = _CLIENT_AUTH_TYPES[self.client_auth_type]
        context.minimum_version = self.min_version
        context.maximum_version = self.max_version or ssl.TLSVersion.MAXIMUM_SUPPORTED
        if self.prefer_server_cipher_suites:
            context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
        else:
            context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE


@dataclass(frozen=True, slots=True)
class WebConfig:
    """A parsed web config file. The default (no file) means plain HTTP without auth."""

    tls: TLSSettings | None = None
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    basic_auth_users: Mapping[str, bytes] = field(
        default_factory=lambda: MappingProxyType({}), repr=False
    )
    http2: bool = True

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> WebConfig:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise WebConfigError(f"{os.fspath(path)}: cannot read: {_reason(exc)}") from None
        try:
            return cls.parse(text, base_dir=Path(path).parent)
        except WebConfigError as exc:
            raise WebConfigError(f"{os.fspath(path)}: {exc}") from None

    @classmethod
    def parse(cls, text: str, base_dir: str | os.PathLike[str] = ".") -> WebConfig:
        try:
            document = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader
        except yaml.MarkedYAMLError as exc:
            # The parser's own message quotes the offending line, which may hold a hash.
            mark = exc.problem_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            raise WebConfigError(f"{where}{exc.problem}") from None
        except yaml.YAMLError:
            raise WebConfigError("not valid YAML") from None
        top = _mapping(document, "")
        _check_keys(
            top,
            ("tls_server_config", "http_server_config", "basic_auth_users"),
            "",
            {"rate_limit": "not implemented by this exporter"},
        )
        http = _mapping(top.get("http_server_config"), "http_server_config")
        _check_keys(http, ("http2", "headers"), "http_server_config")
        return cls(
            tls=_parse_tls(top.get("tls_server_config"), Path(base_dir)),
            headers=MappingProxyType(_parse_headers(http.get("headers"))),
            basic_auth_users=MappingProxyType(_parse_users(top.get("basic_auth_users"))),
            http2=_bool(http.get("http2", True), "http_server_config.http2"),
        )

    @property
    def files(self) -> tuple[str, ...]:
        return self.tls.files if self.tls is not None else ()

    def ssl_context(self) -> ssl.SSLContext | None:
        """A new server context, or None for plain HTTP."""
        return self.tls.new_context() if self.tls is not None else None


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
        # bcrypt is CPU-bound: one at a time, off the event loop.
        self._bcrypt_lock = asyncio.Lock()
        self._bcrypt_waiting = 0

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

    async def check_basic_auth(self, authorization: str | None) -> bool:
        """Checks an Authorization header against `basic_auth_users`."""
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
        if self._bcrypt_waiting >= _MAX_BCRYPT_WAITING:
            # A flood of unknown credentials is refused at once rather than queued.
            return False
        self._bcrypt_waiting += 1
        try:
            async with self._bcrypt_lock:
                matches = await asyncio.get_running_loop().run_in_executor(
                    None, bcrypt.checkpw, password[:_BCRYPT_MAX_PASSWORD], stored or _DUMMY_HASH
                )
        finally:
            self._bcrypt_waiting -= 1
        if matches and stored is not None:
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
            if not await holder.check_basic_auth(authorization):
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


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class _StrictLoader(yaml.SafeLoader):
    """A safe loader that, like Go's strict decoder, rejects a key given twice."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:
                continue  # unhashable: SafeLoader reports it
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
    }
    return names.get(type(value), type(value).__name__)


def _key(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _mapping(value: object, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise WebConfigError(f"{where or 'the file'}: expected a mapping, got {_kind(value)}")
    for key in value:
        if not isinstance(key, str):
            raise WebConfigError(
                f"{where or 'the file'}: keys must be strings, got {_kind(key)} (quote it)"
            )
    return value


def _check_keys(
    table: Mapping[str, Any],
    known: Collection[str],
    where: str,
    unsupported: Mapping[str, str] | None = None,
) -> None:
    for key in table:
        if unsupported and key in unsupported:
            raise WebConfigError(f"{_key(where, key)}: not supported ({unsupported[key]})")
        if key not in known:
            raise WebConfigError(f"{_key(where, key)}: unknown key")


def _string(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise WebConfigError(f"{where}: expected a non-empty string, got {_kind(value)}")
    return value


def _bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise WebConfigError(f"{where}: expected true or false, got {_kind(value)}")
    return value


def _choice(value: object, where: str, choices: Collection[str]) -> str:
    text = _string(value, where)
    if text not in choices:
        raise WebConfigError(f"{where}: {text!r} is not one of {', '.join(sorted(choices))}")
    return text


def _parse_tls(value: object, base_dir: Path) -> TLSSettings | None:
    where = "tls_server_config"
    table = _mapping(value, where)
    if not table:
        return None
    _check_keys(
        table,
        (
            "cert_file",
            "key_file",
            "client_auth_type",
            "client_ca_file",
            "client_ca",
            "min_version",
            "max_version",
            "cipher_suites",
            "prefer_server_cipher_suites",
        ),
        where,
        _UNSUPPORTED_TLS_KEYS,
    )
    for required in ("cert_file", "key_file"):
        if required not in table:
            raise WebConfigError(f"{where}.{required}: missing")
    auth_type = table.get("client_auth_type", "NoClientCert")
    if auth_type in _UNVERIFIED_CLIENT_AUTH_TYPES:
        raise WebConfigError(
            f"{where}.client_auth_type: {auth_type} is not supported: Python's ssl module "
            "cannot accept a client certificate without verifying it; use "
            "VerifyClientCertIfGiven or RequireAndVerifyClientCert with client_ca_file"
        )
    auth_type = _choice(auth_type, f"{where}.client_auth_type", _CLIENT_AUTH_TYPES)
    ca_file = table.get("client_ca_file")
    ca_text = table.get("client_ca")
    if ca_file is not None and ca_text is not None:
        raise WebConfigError(f"{where}: give client_ca_file or client_ca, not both")
    has_ca = ca_file is not None or ca_text is not None
    if has_ca and auth_type == "NoClientCert":
        raise WebConfigError(
            f"{where}: client CAs are configured but client_auth_type is NoClientCert"
        )
    if not has_ca and auth_type != "NoClientCert":
        raise WebConfigError(f"{where}: client_auth_type {auth_type} needs client_ca_file")
    min_version = _TLS_VERSIONS[
        _choice(table.get("min_version", "TLS12"), f"{where}.min_version", _TLS_VERSIONS)
    ]
    max_version = None
    if "max_version" in table:
        max_version = _TLS_VERSIONS[
            _choice(table["max_version"], f"{where}.max_version", _TLS_VERSIONS)
        ]
        if max_version < min_version:
            raise WebConfigError(f"{where}: max_version is lower than min_version")
    return TLSSettings(
        cert_file=str(base_dir / _string(table["cert_file"], f"{where}.cert_file")),
        key_file=str(base_dir / _string(table["key_file"], f"{where}.key_file")),
        client_auth_type=auth_type,
        client_ca_file=(
            None if ca_file is None else str(base_dir / _string(ca_file, f"{where}.client_ca_file"))
        ),
        client_ca=None if ca_text is None else _string(ca_text, f"{where}.client_ca"),
        min_version=min_version,
        max_version=max_version,
        cipher_suites=_parse_cipher_suites(table.get("cipher_suites"), f"{where}.cipher_suites"),
        prefer_server_cipher_suites=_bool(
            table.get("prefer_server_cipher_suites", True), f"{where}.prefer_server_cipher_suites"
        ),
    )


def _parse_cipher_suites(value: object, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise WebConfigError(f"{where}: expected a list, got {_kind(value)}")
    names: list[str] = []
    for index, item in enumerate(value):
        name = _choice(item, f"{where}[{index}]", _CIPHER_SUITES)
        openssl_name = _CIPHER_SUITES[name]
        if openssl_name is not None and openssl_name not in names:
            names.append(openssl_name)
    return tuple(names)


def _parse_headers(value: object) -> dict[str, str]:
    where = "http_server_config.headers"
    headers: dict[str, str] = {}
    for name, header_value in _mapping(value, where).items():
        allowed_names = {known.lower(): known for known in _HEADERS}
        canonical = allowed_names.get(name.lower())
        if canonical is None:
            raise WebConfigError(
                f"{where}.{name}: this header cannot be configured (allowed: {', '.join(_HEADERS)})"
            )
        text = _string(header_value, f"{where}.{name}")
        if any(ch in text for ch in "\r\n\0"):
            raise WebConfigError(f"{where}.{name}: control characters in the value")
        allowed_values = _HEADERS[canonical]
        if allowed_values is not None and text not in allowed_values:
            raise WebConfigError(
                f"{where}.{name}: {text!r} is not one of {', '.join(sorted(allowed_values))}"
            )
        headers[canonical] = text
    return headers


def _parse_users(value: object) -> dict[str, bytes]:
    where = "basic_auth_users"
    users: dict[str, bytes] = {}
    for user, hashed in _mapping(value, where).items():
        if not user or ":" in user:
            raise WebConfigError(f"{where}: user name {user!r} is empty or contains ':'")
        if not isinstance(hashed, str) or not _BCRYPT_HASH.fullmatch(hashed):
            # The value is a secret: it is not quoted.
            raise WebConfigError(f"{where}.{user}: not a bcrypt hash ($2a$, $2b$ or $2y$)")
        users[user] = hashed.encode("ascii")
    return users
