"""The exporter-toolkit web config: parsing, basic auth middleware, TLS (and mTLS) with reload."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import shutil
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import bcrypt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from probe_exporter import webconfig
from probe_exporter.webconfig import (
    WebConfig,
    WebConfigError,
    WebConfigHolder,
    web_middleware,
)

pytestmark = pytest.mark.timeout(60)

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]

PASSWORD = "s3cret pass"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def write(path: Path, text: str) -> Path:
    """Writes through a new file, as config management does, so the change is always seen."""
    scratch = path.with_name(path.name + ".new")
    scratch.write_text(text)
    os.replace(scratch, path)
    return path


# -- parsing -----------------------------------------------------------------------------------


def test_full_file_parses(tmp_path: Path) -> None:
    config = WebConfig.parse(
        f"""
tls_server_config:
  cert_file: tls/server.crt
  key_file: /etc/exporter/server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: tls/ca.crt
  min_version: TLS13
  max_version: TLS13
  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256]
  prefer_server_cipher_suites: false
http_server_config:
  http2: false
  headers:
    X-Frame-Options: deny
    strict-transport-security: max-age=31536000
basic_auth_users:
  prometheus: {HASH}
""",
        base_dir=tmp_path,
    )
    tls = config.tls
    assert tls is not None
    assert tls.cert_file == str(tmp_path / "tls/server.crt")
    assert tls.key_file == "/etc/exporter/server.key"
    assert tls.client_ca_file == str(tmp_path / "tls/ca.crt")
    assert tls.client_auth_type == "RequireAndVerifyClientCert"
    assert tls.min_version == tls.max_version == ssl.TLSVersion.TLSv1_3
    assert tls.cipher_suites == ("ECDHE-RSA-AES128-GCM-SHA256",)
    assert tls.prefer_server_cipher_suites is False
    assert config.files == (tls.cert_file, tls.key_file, tls.client_ca_file)
    assert dict(config.headers) == {
        "X-Frame-Options": "deny",
        "Strict-Transport-Security": "max-age=31536000",
    }
    assert dict(config.basic_auth_users) == {"prometheus": HASH.encode()}
    assert config.http2 is False
    assert HASH not in repr(config)


@pytest.mark.parametrize("text", ["", "# nothing\n", "{}", "tls_server_config: {}\n"])
def test_empty_file_means_plain_http_without_auth(text: str) -> None:
    config = WebConfig.parse(text)
    assert config.tls is None
    assert config.ssl_context() is None
    assert not config.basic_auth_users
    assert not config.headers


TLS = "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n", "the file: expected a mapping, got a list"),
        ("nope: 1\n", "nope: unknown key"),
        ("rate_limit: {interval: 1s, burst: 2}\n", "rate_limit: not supported"),
        ("tls_server_config: {cert_file: c.pem}\n", "tls_server_config.key_file: missing"),
        ("tls_server_config: {key_file: k.pem}\n", "tls_server_config.cert_file: missing"),
        (
            "tls_server_config: {cert_file: c.pem, key_file: 5}\n",
            "tls_server_config.key_file: expected a non-empty string, got an integer",
        ),
        (TLS + "  bogus: 1\n", "tls_server_config.bogus: unknown key"),
        (TLS + "  cert: inline\n", "tls_server_config.cert: not supported (use cert_file)"),
        (TLS + "  client_allowed_sans: [a]\n", "tls_server_config.client_allowed_sans: not supp"),
        (TLS + "  curve_preferences: [X25519]\n", "tls_server_config.curve_preferences: not supp"),
        (
            TLS + "  client_auth_type: RequireAnyClientCert\n",
            "RequireAnyClientCert is not supported",
        ),
        (TLS + "  client_auth_type: RequestClientCert\n", "RequestClientCert is not supported"),
        (TLS + "  client_auth_type: Always\n", "client_auth_type: 'Always' is not one of"),
        (
            TLS + "  client_auth_type: RequireAndVerifyClientCert\n",
            "RequireAndVerifyClientCert needs client_ca_file",
        ),
        (TLS + "  client_ca_file: ca.pem\n", "client_auth_type is NoClientCert"),
        (
            TLS
            + "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: a\n  client_ca: b\n",
            "client_ca_file or client_ca, not both",
        ),
        (TLS + "  min_version: TLS14\n", "tls_server_config.min_version: 'TLS14' is not one of"),
        (TLS + "  min_version: TLS13\n  max_version: TLS12\n", "max_version is lower than min"),
        (
            TLS + "  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n",
            "cipher_suites[0]: 'TLS_RSA_WITH_RC4",
        ),
        (TLS + "  cipher_suites: TLS_AES_128_GCM_SHA256\n", "cipher_suites: expected a list"),
        (TLS + "  prefer_server_cipher_suites: 'yes'\n", "expected true or false, got a string"),
        ("http_server_config: {http2: 1}\n", "http_server_config.http2: expected true or false"),
        ("http_server_config: {gzip: true}\n", "http_server_config.gzip: unknown key"),
        ("http_server_config: {headers: {X-Powered-By: me}}\n", "X-Powered-By: this header cannot"),
        ("http_server_config: {headers: {X-Frame-Options: allow}}\n", "'allow' is not one of"),
        ("http_server_config: {headers: {X-Content-Type-Options: sniff}}\n", "is not one of"),
        ("basic_auth_users: {alice: plaintext}\n", "basic_auth_users.alice: not a bcrypt hash"),
        ("basic_auth_users: [alice]\n", "basic_auth_users: expected a mapping"),
        ("basic_auth_users: {1: x}\n", "basic_auth_users: keys must be strings, got an integer"),
        (f"basic_auth_users: {{'a:b': '{HASH}'}}\n", "user name 'a:b' is empty or contains ':'"),
        ("http_server_config: {}\nhttp_server_config: {}\n", "line 2, column 1: key 'http_server"),
        ("tls_server_config: [\n", "line 2, column 1:"),
    ],
)
def test_invalid_files_name_the_key(text: str, message: str) -> None:
    with pytest.raises(WebConfigError) as caught:
        WebConfig.parse(text)
    assert message in str(caught.value)


def test_errors_never_quote_a_hash(tmp_path: Path) -> None:
    truncated = HASH[:-1]
    with pytest.raises(WebConfigError) as caught:
        WebConfig.parse(f"basic_auth_users:\n  alice: '{truncated}'\n")
    assert truncated not in str(caught.value)
    # YAML's own messages quote the offending line; ours must not.
    with pytest.raises(WebConfigError) as caught:
        WebConfig.parse(f"basic_auth_users:\n  alice: {HASH}\n  bob: [{HASH}\n")
    assert "$2b$" not in str(caught.value)


def test_load_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "web.yml", "nope: 1\n")
    with pytest.raises(WebConfigError, match=r"web\.yml: nope: unknown key"):
        WebConfig.load(path)
    with pytest.raises(WebConfigError, match=r"^web config file .*missing\.yml: no such file$"):
        WebConfig.load(tmp_path / "missing.yml")


def test_bcrypt_variants_accepted() -> None:
    for prefix in ("$2a$", "$2b$", "$2y$"):
        config = WebConfig.parse(f"basic_auth_users: {{u: '{prefix}{HASH[4:]}'}}\n")
        assert config.basic_auth_users["u"].startswith(prefix.encode())


# -- basic auth middleware ---------------------------------------------------------------------


async def hello(request: web.Request) -> web.StreamResponse:
    return web.Response(text="hello")


async def missing(request: web.Request) -> web.StreamResponse:
    raise web.HTTPNotFound(text="no such thing")


def make_app(holder: WebConfigHolder) -> web.Application:
    app = web.Application(middlewares=[web_middleware(holder)])
    for path in ("/metrics", "/probe", "/-/healthy", "/-/ready"):
        app.router.add_get(path, hello)
    app.router.add_get("/missing", missing)
    return app


@pytest.fixture
def auth_file(tmp_path: Path) -> Path:
    return write(
        tmp_path / "web.yml",
        f"""
http_server_config:
  headers:
    X-Content-Type-Options: nosniff
basic_auth_users:
  prometheus: {HASH}
""",
    )


@dataclass
class CheckCounter:
    calls: int = 0


@pytest.fixture
def bcrypt_calls(monkeypatch: pytest.MonkeyPatch) -> CheckCounter:
    counter = CheckCounter()
    checkpw = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        counter.calls += 1
        return checkpw(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting)
    return counter


async def test_basic_auth_required(aiohttp_client: ClientFactory, auth_file: Path) -> None:
    client = await aiohttp_client(make_app(WebConfigHolder(auth_file)))
    for headers in (
        {},
        basic("prometheus", "wrong"),
        basic("nobody", PASSWORD),
        {"Authorization": "Basic !!!"},
        {"Authorization": "Bearer abc"},
        {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
    ):
        response = await client.get("/metrics", headers=headers)
        assert response.status == 401, headers
        assert response.headers["WWW-Authenticate"] == "Basic"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    response = await client.get("/metrics", headers=basic("prometheus", PASSWORD))
    assert response.status == 200
    assert await response.text() == "hello"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_health_endpoints_stay_open(aiohttp_client: ClientFactory, auth_file: Path) -> None:
    client = await aiohttp_client(make_app(WebConfigHolder(auth_file)))
    for path in ("/-/healthy", "/-/ready"):
        response = await client.get(path)
        assert response.status == 200, path
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    # Other spellings of an exempt path are not exempt (they route nowhere, and need auth).
    for path in ("/-/healthy/", "/-//healthy", "/-/healthy%2F..%2Fmetrics", "/unknown"):
        assert (await client.get(path)).status == 401, path


async def test_http_exceptions_get_the_headers(
    aiohttp_client: ClientFactory, auth_file: Path
) -> None:
    client = await aiohttp_client(make_app(WebConfigHolder(auth_file)))
    response = await client.get("/missing", headers=basic("prometheus", PASSWORD))
    assert response.status == 404
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_successful_checks_are_cached(
    aiohttp_client: ClientFactory, auth_file: Path, bcrypt_calls: CheckCounter
) -> None:
    client = await aiohttp_client(make_app(WebConfigHolder(auth_file)))
    for _ in range(3):
        assert (await client.get("/probe", headers=basic("prometheus", PASSWORD))).status == 200
    assert bcrypt_calls.calls == 1
    # The cache holds the password that matched, not the user: a wrong one is still checked.
    assert (await client.get("/probe", headers=basic("prometheus", "wrong"))).status == 401
    assert bcrypt_calls.calls == 2
    # Unknown users pay a bcrypt check too, so timing does not tell which users exist.
    assert (await client.get("/probe", headers=basic("nobody", "x"))).status == 401
    assert bcrypt_calls.calls == 3
    assert (await client.get("/probe", headers=basic("prometheus", PASSWORD))).status == 200
    assert bcrypt_calls.calls == 3


async def test_a_flood_of_wrong_credentials_is_bounded_per_client(
    auth_file: Path, bcrypt_calls: CheckCounter
) -> None:
    holder = WebConfigHolder(auth_file)
    wrong = [basic("prometheus", f"wrong-{n}")["Authorization"] for n in range(50)]
    right = basic("prometheus", PASSWORD)["Authorization"]
    flood = [holder.check_basic_auth(header, "192.0.2.66") for header in wrong]
    results = await asyncio.gather(*flood, holder.check_basic_auth(right, "192.0.2.1"))
    # The flooding address got its few checks; the rest were refused without one, and the
    # right password from another address was checked all the same.
    assert results == [False] * 50 + [True]
    assert bcrypt_calls.calls == webconfig._MAX_BCRYPT_PER_CLIENT + 1


async def test_identical_credentials_in_flight_share_one_check(
    auth_file: Path, bcrypt_calls: CheckCounter
) -> None:
    holder = WebConfigHolder(auth_file)
    wrong = basic("prometheus", "wrong")["Authorization"]
    right = basic("prometheus", PASSWORD)["Authorization"]
    results = await asyncio.gather(
        *(holder.check_basic_auth(wrong, f"192.0.2.{n}") for n in range(20)),
        *(holder.check_basic_auth(right, f"198.51.100.{n}") for n in range(20)),
    )
    assert results == [False] * 20 + [True] * 20
    assert bcrypt_calls.calls == 2


async def test_unknown_users_are_checked_against_a_hash_of_the_same_cost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    costs: list[bytes] = []
    checkpw = bcrypt.checkpw

    def recording(password: bytes, hashed: bytes) -> bool:
        costs.append(hashed[:7])
        return checkpw(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", recording)
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=6)).decode()
    holder = WebConfigHolder(write(tmp_path / "web.yml", f"basic_auth_users: {{u: '{hashed}'}}\n"))
    assert not await holder.check_basic_auth(basic("u", "nope")["Authorization"])
    assert not await holder.check_basic_auth(basic("nobody", "nope")["Authorization"])
    assert costs[0][:7] == costs[1][:7] == b"$2b$06$"


async def test_password_over_72_bytes_is_cut_like_bcrypt_does(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    long_password = "p" * 72
    hashed = bcrypt.hashpw(long_password.encode(), bcrypt.gensalt(rounds=4)).decode()
    path = write(tmp_path / "web.yml", f"basic_auth_users: {{u: '{hashed}'}}\n")
    client = await aiohttp_client(make_app(WebConfigHolder(path)))
    assert (await client.get("/probe", headers=basic("u", long_password + "xyz"))).status == 200
    assert (await client.get("/probe", headers=basic("u", "p" * 71))).status == 401


async def test_no_users_means_no_auth(aiohttp_client: ClientFactory, tmp_path: Path) -> None:
    path = write(
        tmp_path / "web.yml",
        "http_server_config:\n  headers:\n    Content-Security-Policy: default-src 'none'\n",
    )
    client = await aiohttp_client(make_app(WebConfigHolder(path)))
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Security-Policy"] == "default-src 'none'"
    client_without_file = await aiohttp_client(make_app(WebConfigHolder(None)))
    assert (await client_without_file.get("/metrics")).status == 200


async def test_password_rotation_needs_no_restart(
    aiohttp_client: ClientFactory, auth_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    holder = WebConfigHolder(auth_file, check_interval=0.0)
    client = await aiohttp_client(make_app(holder))
    assert (await client.get("/probe", headers=basic("prometheus", PASSWORD))).status == 200

    new_hash = bcrypt.hashpw(b"rotated", bcrypt.gensalt(rounds=4)).decode()
    write(auth_file, f"basic_auth_users:\n  prometheus: {new_hash}\n")
    assert (await client.get("/probe", headers=basic("prometheus", PASSWORD))).status == 401
    assert (await client.get("/probe", headers=basic("prometheus", "rotated"))).status == 200

    # A broken file keeps the config in force, and the log shows neither hash nor password.
    with caplog.at_level(logging.INFO, logger="probe_exporter.webconfig"):
        write(auth_file, f"basic_auth_users:\n  prometheus: {new_hash[:-2]}\n  other: [\n")
        assert (await client.get("/probe", headers=basic("prometheus", "rotated"))).status == 200
    assert holder.last_error is not None
    assert "web config not reloaded" in caplog.text
    assert "$2b$" not in caplog.text
    assert "rotated" not in caplog.text


async def test_changes_are_checked_at_most_once_per_interval(
    tmp_path: Path, auth_file: Path
) -> None:
    holder = WebConfigHolder(auth_file, check_interval=3600.0)
    write(auth_file, "basic_auth_users: {}\n")
    assert holder.maybe_reload() is False
    assert holder.config.basic_auth_users
    holder.check_interval = 0.0
    assert holder.maybe_reload() is True
    assert not holder.config.basic_auth_users
    assert holder.maybe_reload() is False  # unchanged since


def test_startup_with_a_broken_file_fails(tmp_path: Path) -> None:
    with pytest.raises(WebConfigError, match="unknown key"):
        WebConfigHolder(write(tmp_path / "web.yml", "bogus: true\n"))


# -- TLS ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    second_cert: Path  # another server certificate from the same CA, for rotation
    second_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path  # a client certificate from a CA the server does not trust
    stranger_key: Path


def _openssl(directory: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)


def _new_ca(directory: Path, name: str) -> tuple[Path, Path]:
    _openssl(
        directory,
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        f"/CN={name}",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.crt",
    )
    return directory / f"{name}.crt", directory / f"{name}.key"


def _new_leaf(
    directory: Path, name: str, ca: tuple[Path, Path], extensions: str, serial: int
) -> tuple[Path, Path]:
    (directory / f"{name}.ext").write_text(
        "basicConstraints=CA:FALSE\nauthorityKeyIdentifier=keyid,issuer\n" + extensions
    )
    _openssl(
        directory,
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        f"/CN={name}",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.csr",
    )
    _openssl(
        directory,
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        str(ca[0]),
        "-CAkey",
        str(ca[1]),
        "-set_serial",
        str(serial),
        "-days",
        "2",
        "-extfile",
        f"{name}.ext",
        "-out",
        f"{name}.crt",
    )
    return directory / f"{name}.crt", directory / f"{name}.key"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    directory = tmp_path_factory.mktemp("pki")
    ca = _new_ca(directory, "test-ca")
    server_extensions = "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
    server = _new_leaf(directory, "server-1", ca, server_extensions, 1)
    second = _new_leaf(directory, "server-2", ca, server_extensions, 2)
    client = _new_leaf(directory, "client", ca, "extendedKeyUsage=clientAuth\n", 3)
    other_ca = _new_ca(directory, "other-ca")
    stranger = _new_leaf(directory, "stranger", other_ca, "extendedKeyUsage=clientAuth\n", 4)
    return Pki(ca[0], *server, *second, *client, *stranger)


@pytest.fixture
def tls_dir(tmp_path: Path, pki: Pki) -> Path:
    """A web config directory with its own copies of the server files (rotated by tests)."""
    shutil.copy(pki.server_cert, tmp_path / "server.crt")
    shutil.copy(pki.server_key, tmp_path / "server.key")
    shutil.copy(pki.ca, tmp_path / "ca.crt")
    return tmp_path


Serve = Callable[[WebConfigHolder], Awaitable[str]]


@pytest.fixture
async def serve() -> Any:
    """Starts the middleware app on 127.0.0.1 with the holder's TLS context; returns its URL."""
    runners: list[web.AppRunner] = []

    async def start(holder: WebConfigHolder) -> str:
        runner = web.AppRunner(make_app(holder))
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=holder.ssl_context())
        await site.start()
        port = runner.addresses[0][1]
        return f"https://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


def client_context(
    pki: Pki, with_cert: Path | None = None, with_key: Path | None = None
) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if with_cert is not None:
        context.load_cert_chain(with_cert, with_key)
    return context


async def get(url: str, context: ssl.SSLContext, **kwargs: Any) -> tuple[int, str]:
    connector = aiohttp.TCPConnector(ssl=context, force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(url, timeout=aiohttp.ClientTimeout(total=10), **kwargs) as response,
    ):
        return response.status, await response.text()


async def served_certificate(url: str, context: ssl.SSLContext) -> str:
    """The common name of the certificate the server presents on a new connection."""
    port = int(url.rsplit(":", 1)[1])
    _reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=context), 10
    )
    try:
        subject = dict(item[0] for item in writer.get_extra_info("peercert")["subject"])
        return str(subject["commonName"])
    finally:
        writer.close()
        await writer.wait_closed()


def tls_config(directory: Path, extra: str = "") -> Path:
    return write(
        directory / "web.yml",
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n" + extra,
    )


@pytest.mark.real
async def test_https_with_basic_auth(serve: Serve, pki: Pki, tls_dir: Path) -> None:
    holder = WebConfigHolder(tls_config(tls_dir, f"basic_auth_users:\n  prom: {HASH}\n"))
    url = await serve(holder)
    context = client_context(pki)
    assert await get(url + "/metrics", context) == (401, "Unauthorized\n")
    assert await get(url + "/metrics", context, headers=basic("prom", PASSWORD)) == (200, "hello")
    assert await get(url + "/-/healthy", context) == (200, "hello")
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await get(url + "/-/healthy", ssl.create_default_context())  # untrusted CA


@pytest.mark.real
async def test_certificate_rotation_needs_no_restart(serve: Serve, pki: Pki, tls_dir: Path) -> None:
    holder = WebConfigHolder(tls_config(tls_dir), check_interval=0.0)
    url = await serve(holder)
    context = client_context(pki)
    assert await served_certificate(url, context) == "server-1"

    shutil.copy(pki.second_key, tls_dir / "server.key.new")
    shutil.copy(pki.second_cert, tls_dir / "server.crt.new")
    os.replace(tls_dir / "server.key.new", tls_dir / "server.key")
    os.replace(tls_dir / "server.crt.new", tls_dir / "server.crt")
    # The handshake itself looks at the files: the first new connection gets the new one.
    assert await served_certificate(url, context) == "server-2"
    assert await get(url + "/metrics", context) == (200, "hello")

    # Half a rotation (a key that does not match) keeps serving the last good pair.
    shutil.copy(pki.server_key, tls_dir / "server.key")
    assert await served_certificate(url, context) == "server-2"
    assert holder.last_error is not None
    assert "cannot load cert_file" in holder.last_error


@pytest.mark.real
async def test_client_certificates_required(serve: Serve, pki: Pki, tls_dir: Path) -> None:
    holder = WebConfigHolder(
        tls_config(
            tls_dir, "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
        )
    )
    url = await serve(holder)
    trusted = client_context(pki, pki.client_cert, pki.client_key)
    assert await get(url + "/metrics", trusted) == (200, "hello")
    for context in (client_context(pki), client_context(pki, pki.stranger_cert, pki.stranger_key)):
        with pytest.raises(aiohttp.ClientError):
            await get(url + "/metrics", context)


@pytest.mark.real
async def test_tls_minimum_version(serve: Serve, pki: Pki, tls_dir: Path) -> None:
    url = await serve(WebConfigHolder(tls_config(tls_dir, "  min_version: TLS13\n")))
    old_client = client_context(pki)
    old_client.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(aiohttp.ClientError):
        await get(url + "/metrics", old_client)
    assert await get(url + "/metrics", client_context(pki)) == (200, "hello")


@pytest.mark.real
def test_turning_tls_off_needs_a_restart(pki: Pki, tls_dir: Path) -> None:
    holder = WebConfigHolder(tls_config(tls_dir), check_interval=0.0)
    context = holder.ssl_context()
    assert context is not None
    assert holder.ssl_context() is context
    write(tls_dir / "web.yml", "basic_auth_users: {}\n")
    assert holder.maybe_reload() is False
    assert holder.last_error is not None
    assert "needs a restart" in holder.last_error
    assert holder.config.tls is not None


def test_missing_certificate_fails_at_startup(tmp_path: Path) -> None:
    with pytest.raises(WebConfigError, match="cannot load cert_file"):
        WebConfigHolder(tls_config(tmp_path))


def test_example_web_config_is_valid() -> None:
    example = Path(__file__).resolve().parents[1] / "examples" / "web-config.yml"
    config = WebConfig.load(example)
    assert config.tls is not None
    assert config.tls.client_auth_type == "RequireAndVerifyClientCert"
    assert config.tls.cert_file == str(example.parent / "tls" / "server.crt")
    assert set(config.basic_auth_users) == {"prometheus"}
    assert config.headers["X-Frame-Options"] == "deny"


def test_every_error_of_the_file_is_reported_at_once() -> None:
    text = (
        "tls_server_config:\n"  # 1
        "  cert_file: c.pem\n"  # 2
        "  min_version: TLS14\n"  # 3
        "  cipher_suites: [TLS_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256]\n"  # 4
        "http_server_config:\n"  # 5
        "  http2: 1\n"  # 6
        "  headers: {X-Frame-Options: deny, x-frame-options: deny}\n"  # 7
        "basic_auth_users:\n"  # 8
        "  alice: plaintext\n"  # 9
        "nope: 1\n"  # 10
    )
    with pytest.raises(WebConfigError) as caught:
        WebConfig.parse(text)
    found = [(issue.key, issue.reason, issue.line) for issue in caught.value.issues]
    assert found == [
        ("tls_server_config.key_file", "missing", 1),
        ("tls_server_config.min_version", "'TLS14' is not one of TLS10, TLS11, TLS12, TLS13", 3),
        (
            "tls_server_config.cipher_suites",
            "'TLS_AES_128_GCM_SHA256' is named twice (entries 0 and 1)",
            4,
        ),
        ("http_server_config.http2", "expected true or false, got an integer", 6),
        ("http_server_config.headers", "X-Frame-Options is given twice (in another case)", 7),
        ("basic_auth_users.alice", "not a bcrypt hash ($2a$, $2b$ or $2y$)", 9),
        (
            "nope",
            "unknown key (known: tls_server_config, http_server_config, basic_auth_users)",
            10,
        ),
    ]
    assert str(caught.value).endswith("(7 errors)")


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_only_regular_files_are_read(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "web.yml"
    if kind == "fifo":
        os.mkfifo(path)  # no writer: a plain open() would block for ever
    else:
        path.mkdir()
    described = "a FIFO" if kind == "fifo" else "a directory"
    with pytest.raises(WebConfigError) as caught:
        WebConfigHolder(path)
    assert str(caught.value) == f"web config file {path}: not a regular file ({described})"
