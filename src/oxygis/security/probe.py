"""Fetching a live address as a browser would, for the self-check (S11).

``connect`` sends the connection to another address while the name still goes in SNI,
the certificate check and the Host header (as ``curl --resolve`` does): the worker
scans the names it serves without depending on what DNS says on its own machine.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from .observatory import Fetched

BODY_LIMIT = 512 * 1024  # enough for any of our pages; a scan never reads unbounded


class ProbeError(Exception):
    """The address could not be fetched: one line, said as the operator needs it."""


@dataclass
class Target:
    url: str
    host: str
    port: int
    path: str
    connect: str | None = None  # an address to connect to instead of resolving host

    @classmethod
    def parse(cls, url: str, connect: str | None = None) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ProbeError(f"not an http(s) address: {url!r}")
        default = 443 if parts.scheme == "https" else 80
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return cls(url, parts.hostname, parts.port or default, path, connect)

    @property
    def address(self) -> str:
        return self.connect or self.host

    @property
    def netloc(self) -> str:
        default = 443 if self.url.startswith("https://") else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"


def tls_context(cafile: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _open(target: Target, context: ssl.SSLContext | None, timeout: float) -> socket.socket:
    try:
        raw = socket.create_connection((target.address, target.port), timeout=timeout)
    except OSError as exc:
        raise ProbeError(f"cannot connect to {target.address}:{target.port}: {exc}") from None
    if context is None:
        return raw
    try:
        return context.wrap_socket(raw, server_hostname=target.host)
    except (ssl.SSLError, OSError) as exc:
        raw.close()
        raise ProbeError(f"TLS with {target.host}: {exc}") from None


def _request(sock: socket.socket, target: Target, path: str, headers=None):
    conn = http.client.HTTPConnection(target.host, target.port)
    conn.sock = sock
    conn.request("GET", path, headers={"Host": target.netloc, **(headers or {})})
    response = conn.getresponse()
    body = response.read(BODY_LIMIT)
    return response, body


def fetch(
    target: Target, *, cafile: str | None = None, timeout: float = 10, headers=None
) -> Fetched:
    """One GET of the address, over verified TLS; then one plain-http GET of the same host
    on port 80, to see where it redirects (or that nothing listens there)."""
    sock = _open(target, tls_context(cafile), timeout)
    try:
        response, body = _request(sock, target, target.path, headers)
    except (OSError, http.client.HTTPException) as exc:
        raise ProbeError(f"{target.url}: {exc}") from None
    finally:
        sock.close()
    fetched = Fetched(
        url=target.url,
        status=response.status,
        headers=list(response.getheaders()),
        body=body.decode("utf-8", "replace"),
    )
    plain = Target(
        f"http://{target.host}{target.path}", target.host, 80, target.path, target.connect
    )
    try:
        sock = _open(plain, None, timeout)
    except ProbeError:
        return fetched  # nothing on http: nothing to redirect
    try:
        response, _ = _request(sock, plain, target.path)
        fetched.http_refused = False
        if 300 <= response.status < 400:
            fetched.http_location = response.getheader("Location")
    except (OSError, http.client.HTTPException):
        pass  # something there, but not http: browsers cannot be sent there either
    finally:
        sock.close()
    return fetched
