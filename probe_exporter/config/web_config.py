"""The web config file (`--web.config.file`) in the Prometheus exporter-toolkit format: its
schema and what it means. Serving it (reloads, basic auth, TLS handshakes) is webconfig.py's.

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
config file's directory. Entries given twice (a key, a header in another case, a cipher suite)
are errors. Passwords and hashes are never put in error messages.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, model_validator

from ..errors import ExporterError
from .files import UnreadableFile, read_regular_file
from .schema import (
    Issue,
    Loc,
    StrictModel,
    boolean,
    checked,
    choice,
    describe,
    fail,
    issues_message,
    string,
    unique,
    validate,
)

__all__ = ["TLSSettings", "WebConfig", "WebConfigError"]

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
# YAML's words for the types of values.
_YAML_NAMES: Mapping[type, str] = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "a mapping",
}


class WebConfigError(ExporterError, ValueError):
    """The web config file is invalid; the message names each key (never a secret)."""

    def __init__(self, message: str, issues: tuple[Issue, ...] = ()) -> None:
        super().__init__(message)
        self.issues = issues


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
        source = os.fspath(path)
        try:
            text = read_regular_file(path).decode("utf-8")
        except UnreadableFile as exc:
            raise WebConfigError(f"web config file {source}: {exc}") from None
        except UnicodeDecodeError as exc:
            raise WebConfigError(f"{source}: not UTF-8 (byte {exc.start})") from None
        try:
            return cls.parse(text, base_dir=Path(path).parent)
        except WebConfigError as exc:
            raise WebConfigError(f"{source}: {exc}", exc.issues) from None

    @classmethod
    def parse(cls, text: str, base_dir: str | os.PathLike[str] = ".") -> WebConfig:
        """Validates web config YAML; one WebConfigError names every error found."""
        try:
            document = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader
        except yaml.MarkedYAMLError as exc:
            # The parser's own message quotes the offending line, which may hold a hash.
            mark = exc.problem_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            raise WebConfigError(f"{where}{exc.problem}") from None
        except yaml.YAMLError:
            raise WebConfigError("not valid YAML") from None
        if document is None:
            document = {}
        if not isinstance(document, dict):
            kind = describe(document, _YAML_NAMES)
            raise WebConfigError(f"the file: expected a mapping, got {kind}")
        valid, issues = validate(
            WebConfigDocument,
            document,
            names=_YAML_NAMES,
            table="a mapping",
            locate=lambda loc: _yaml_line(text, loc),
        )
        if issues:
            raise WebConfigError(issues_message("", issues), tuple(issues))
        assert isinstance(valid, WebConfigDocument)
        return valid.web_config(Path(base_dir))

    @property
    def files(self) -> tuple[str, ...]:
        return self.tls.files if self.tls is not None else ()

    def ssl_context(self) -> ssl.SSLContext | None:
        """A new server context, or None for plain HTTP."""
        return self.tls.new_context() if self.tls is not None else None


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


def _yaml_line(text: str, loc: Loc) -> int | None:
    """The line (from 1) of the key at `loc`, from the YAML node tree."""
    node: yaml.Node | None = yaml.compose(text, Loader=_StrictLoader)
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            entry = next((e for e in node.value if e[0].value == str(part)), None)
            if entry is None:
                break
            line, node = entry[0].start_mark.line + 1, entry[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


# -- the schema --------------------------------------------------------------------------------

_text = string(2**20, what="a non-empty string")
_switch = boolean("true or false")
_version = choice(_TLS_VERSIONS)
_cipher_suite = choice(_CIPHER_SUITES)
_client_auth_choice = choice(_CLIENT_AUTH_TYPES)


def _client_auth_type(value: object) -> str:
    if value in _UNVERIFIED_CLIENT_AUTH_TYPES:
        fail(
            f"{value} is not supported: Python's ssl module "
            "cannot accept a client certificate without verifying it; use "
            "VerifyClientCertIfGiven or RequireAndVerifyClientCert with client_ca_file"
        )
    return _client_auth_choice(value)


def _string_keys(value: object) -> object:
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                fail(f"keys must be strings, got {describe(key, _YAML_NAMES)} (quote it)")
    return value


def _list(value: object) -> object:
    if not isinstance(value, list):
        fail(f"expected a list, got {describe(value, _YAML_NAMES)}")
    return value


def _unique_names(names: tuple[str, ...]) -> tuple[str, ...]:
    unique(names)
    return names


def _headers(value: object) -> dict[str, str]:
    """The toolkit's headers, in canonical case; a value it restricts must be one it allows."""
    headers: dict[str, str] = {}
    if value is None:
        return headers
    if not isinstance(value, dict):
        fail(f"expected a mapping, got {describe(value, _YAML_NAMES)}")
    _string_keys(value)
    allowed_names = {known.lower(): known for known in _HEADERS}
    for name, header_value in value.items():
        canonical = allowed_names.get(name.lower())
        if canonical is None:
            fail(f"{name}: this header cannot be configured (allowed: {', '.join(_HEADERS)})")
        if canonical in headers:
            fail(f"{canonical} is given twice (in another case)")
        if not isinstance(header_value, str) or not header_value:
            kind = describe(header_value, _YAML_NAMES)
            fail(f"{name}: expected a non-empty string, got {kind}")
        if any(ch in header_value for ch in "\r\n\0"):
            fail(f"{name}: control characters in the value")
        allowed_values = _HEADERS[canonical]
        if allowed_values is not None and header_value not in allowed_values:
            fail(f"{name}: {header_value!r} is not one of {', '.join(sorted(allowed_values))}")
        headers[canonical] = header_value
    return headers


def _users(value: object) -> object:
    if value is None:
        return {}
    if isinstance(value, dict):
        _string_keys(value)
        for user in value:
            if not user or ":" in user:
                fail(f"user name {user!r} is empty or contains ':'")
    return value


def _bcrypt_hash(value: object) -> bytes:
    if not isinstance(value, str) or not _BCRYPT_HASH.fullmatch(value):
        # The value is a secret: it is not quoted.
        fail("not a bcrypt hash ($2a$, $2b$ or $2y$)")
    return value.encode("ascii")


def _no_tls(value: object) -> object:
    return None if value == {} else _string_keys(value)


def _no_table(value: object) -> object:
    return {} if value is None else _string_keys(value)


class TLSDocument(StrictModel):
    unsupported_keys = _UNSUPPORTED_TLS_KEYS

    cert_file: Annotated[str, checked(_text)]
    key_file: Annotated[str, checked(_text)]
    client_auth_type: Annotated[str, checked(_client_auth_type)] = "NoClientCert"
    client_ca_file: Annotated[str | None, checked(_text)] = None
    client_ca: Annotated[str | None, checked(_text)] = None
    min_version: Annotated[str, checked(_version)] = "TLS12"
    max_version: Annotated[str | None, checked(_version)] = None
    cipher_suites: Annotated[
        tuple[Annotated[str, checked(_cipher_suite)], ...] | None,
        checked(_list),
        AfterValidator(_unique_names),
    ] = ()
    prefer_server_cipher_suites: Annotated[bool, checked(_switch)] = True

    @model_validator(mode="after")
    def _consistent(self) -> TLSDocument:
        if self.client_ca_file is not None and self.client_ca is not None:
            fail("give client_ca_file or client_ca, not both")
        has_ca = self.client_ca_file is not None or self.client_ca is not None
        if has_ca and self.client_auth_type == "NoClientCert":
            fail("client CAs are configured but client_auth_type is NoClientCert")
        if not has_ca and self.client_auth_type != "NoClientCert":
            fail(f"client_auth_type {self.client_auth_type} needs client_ca_file")
        if self.max_version is not None and (
            _TLS_VERSIONS[self.max_version] < _TLS_VERSIONS[self.min_version]
        ):
            fail("max_version is lower than min_version")
        return self

    def settings(self, base_dir: Path) -> TLSSettings:
        openssl_names = (_CIPHER_SUITES[name] for name in self.cipher_suites or ())
        ca_file = self.client_ca_file
        return TLSSettings(
            cert_file=str(base_dir / self.cert_file),
            key_file=str(base_dir / self.key_file),
            client_auth_type=self.client_auth_type,
            client_ca_file=None if ca_file is None else str(base_dir / ca_file),
            client_ca=self.client_ca,
            min_version=_TLS_VERSIONS[self.min_version],
            max_version=None if self.max_version is None else _TLS_VERSIONS[self.max_version],
            # Go's aliases name one OpenSSL suite; TLS 1.3 suites are always on.
            cipher_suites=tuple(dict.fromkeys(name for name in openssl_names if name)),
            prefer_server_cipher_suites=self.prefer_server_cipher_suites,
        )


class HTTPDocument(StrictModel):
    http2: Annotated[bool, checked(_switch)] = True
    headers: Annotated[dict[str, str], checked(_headers)] = {}


class WebConfigDocument(StrictModel):
    unsupported_keys = {"rate_limit": "not implemented by this exporter"}

    tls_server_config: Annotated[TLSDocument | None, checked(_no_tls)] = None
    http_server_config: Annotated[HTTPDocument, checked(_no_table)] = HTTPDocument()
    basic_auth_users: Annotated[
        dict[str, Annotated[bytes, checked(_bcrypt_hash)]], checked(_users)
    ] = {}

    def web_config(self, base_dir: Path) -> WebConfig:
        tls = self.tls_server_config
        http = self.http_server_config
        return WebConfig(
            tls=None if tls is None else tls.settings(base_dir),
            headers=MappingProxyType(http.headers),
            basic_auth_users=MappingProxyType(self.basic_auth_users),
            http2=http.http2,
        )
