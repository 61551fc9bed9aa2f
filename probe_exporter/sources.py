"""HTTP sources merged into a probe (Kamailio's xhttp_prom, rtpengine's /metrics): fetched whole
within the probe's deadline, bounded in size, never redirected.

Their URLs may carry credentials (`user:password@`, `?token=`), so every failure is raised as a
SourceError whose message names the URL redacted, and never includes the HTTP library's own
text: aiohttp puts the full URL in its messages, and a hostile source's bytes in its parser's.
"""

from __future__ import annotations

import asyncio
import socket
import urllib.parse

import aiohttp
from prometheus_client.metrics_core import Metric

from .collectors.merge import MergeError, parse_exposition
from .errors import ExporterError, ExporterTimeout, describe_os_error

# xhttp_prom and rtpengine answer with tens of KB; parsing costs ~50 us a line, so a larger
# body would cost more CPU than the probe's whole budget.
HTTP_BODY_LIMIT = 1 << 20


class SourceError(ExporterError):
    """An HTTP source failed; the message says how, and from which (redacted) URL."""

    def __init__(self, problem: str, url: str) -> None:
        super().__init__(f"{problem} from {redact_url(url)}")


class SourceStatusError(SourceError):
    """The source answered with another status than 200 (redirects included)."""

    def __init__(self, status: int, url: str) -> None:
        super().__init__(f"HTTP {status}", url)
        self.status = status


class SourceTooLarge(SourceError):
    """The body is larger than HTTP_BODY_LIMIT."""


class SourceTimeout(SourceError, ExporterTimeout):
    """No complete answer before the probe's deadline."""


class SourceConnectionError(SourceError):
    """Could not connect, or the connection failed before the answer was complete."""


class SourceProtocolError(SourceError):
    """The answer is not valid HTTP (status line, headers, length, chunks)."""


class SourceInvalid(SourceError):
    """The body is not a text-format exposition."""


def redact_url(url: str) -> str:
    """Shows a URL without its credentials: user name and password, and query values (tokens)."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if parts.username is not None or parts.password is not None:
        netloc = "<secret>@" + netloc.rpartition("@")[2]
    query = "&".join(
        f"{name}=<secret>"
        for name, _ in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    )
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))


async def fetch_source(http: aiohttp.ClientSession, url: str, timeout: float) -> list[Metric]:
    """Fetches and parses one HTTP source within `timeout` seconds; raises SourceError."""
    try:
        body = await _get(http, url, timeout)
    except SourceError:
        raise
    except TimeoutError:  # aiohttp's own timeouts are TimeoutErrors too
        raise SourceTimeout(f"no complete answer within {timeout:.3f}s", url) from None
    except aiohttp.ClientError as exc:
        raise _client_error(exc, url) from None
    try:
        # Parsing is the costly part: off the event loop, so other probes go on meanwhile.
        return await asyncio.to_thread(parse_exposition, body.decode("utf-8", errors="replace"))
    except MergeError as exc:
        raise SourceInvalid(str(exc), url) from None


async def _get(http: aiohttp.ClientSession, url: str, timeout: float) -> bytearray:
    # No redirects: a redirect could send the exporter to an address no one allowed.
    async with http.get(
        url, timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=False
    ) as response:
        if response.status != 200:
            raise SourceStatusError(response.status, url)
        too_large = f"body larger than {HTTP_BODY_LIMIT} bytes"
        if (response.content_length or 0) > HTTP_BODY_LIMIT:
            raise SourceTooLarge(too_large, url)
        body = bytearray()
        async for chunk in response.content.iter_any():
            body += chunk
            if len(body) > HTTP_BODY_LIMIT:
                raise SourceTooLarge(too_large, url)
    return body


def _client_error(exc: aiohttp.ClientError, url: str) -> SourceError:
    """aiohttp's error in words of our own: its messages hold the URL, tokens and all."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return SourceConnectionError("TLS certificate not accepted", url)
    if isinstance(exc, aiohttp.ClientSSLError):
        return SourceConnectionError("TLS handshake failed", url)
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, socket.gaierror):
            return SourceConnectionError(f"cannot resolve the host: {exc.os_error.strerror}", url)
        return SourceConnectionError(f"cannot connect: {_os_reason(exc.os_error)}", url)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return SourceConnectionError("connection closed before the answer was complete", url)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return SourceProtocolError("malformed or incomplete body", url)
    if isinstance(exc, aiohttp.ClientResponseError):
        # Raised for what the response parser rejects; the real status is checked above.
        return SourceProtocolError("malformed HTTP response", url)
    if isinstance(exc, aiohttp.ClientOSError):
        return SourceConnectionError(f"connection failed: {_os_reason(exc)}", url)
    return SourceConnectionError(f"request failed ({type(exc).__name__})", url)


def _os_reason(exc: OSError) -> str:
    return describe_os_error(exc) if exc.errno is not None else "no further detail"
