"""The embedded HTTPS server: Hypercorn in front of the WSGI application.

Why Hypercorn (see docs/architecture.md): it is an event-loop server, so a connection
costs a socket and a coroutine, not a worker. It reads each request whole (headers,
then the body, up to a bound) in the loop, and only then hands it to a thread that runs
Django. Idle and slow clients (slowloris, slow bodies) therefore tie up no thread; an
idle connection, or one that has not finished its headers, is closed after
KEEP_ALIVE seconds, a read that stalls after READ_TIMEOUT. HTTP/1.1 keep-alive is on.
"""

from __future__ import annotations

import resource
import ssl
from pathlib import Path

from hypercorn.config import Config
from hypercorn.run import run as hypercorn_run

# TLS 1.2 suites with forward secrecy and authenticated encryption only (no CBC: LUCKY13
# and its kin); TLS 1.3's suites are all AEAD.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
# The path only, never the query string: customer links carry their token there.
ACCESS_LOG_FORMAT = '%(h)s %(t)s "%(r)s" %(s)s %(b)s %(D)sus'

KEEP_ALIVE = 5  # seconds an idle connection (or one still sending headers) stays open
READ_TIMEOUT = 10  # seconds a read of a request may stall
HANDSHAKE_TIMEOUT = 10  # seconds for the TLS handshake
MAX_BODY = 4 * 1024 * 1024  # a request body larger than this is refused (400)
MAX_HEADERS = 16 * 1024  # request line and headers together


def harden(context: ssl.SSLContext) -> ssl.SSLContext:
    """TLS 1.2 or newer (C12), AEAD suites only."""
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    return context


class ServerConfig(Config):
    """Hypercorn's settings, with our TLS context: hardened, HTTP/1.1, and in the
    embedded mode each tenant host's certificate chosen by SNI (web/tls.py)."""

    tls_folder: str | None = None
    tls_default_names: tuple[str, ...] = ()

    def create_ssl_context(self) -> ssl.SSLContext | None:
        if not self.ssl_enabled:
            return None
        # Built here rather than by Hypercorn, which resets the context's options.
        context = harden(ssl.create_default_context(ssl.Purpose.CLIENT_AUTH))
        context.set_alpn_protocols(["http/1.1"])
        context.load_cert_chain(certfile=self.certfile, keyfile=self.keyfile)
        if self.tls_folder:
            from .tls import HostCertificates

            hosts = HostCertificates(
                Path(self.tls_folder), existing_tenant_host, default_names=self.tls_default_names
            )
            context.sni_callback = hosts.sni_callback
        return context


def existing_tenant_host(name: str) -> bool:
    """Is ``name`` the host of a tenant that exists (the only names we mint for)?"""
    from oxygis.tenancy.context import CATALOG, using_database
    from oxygis.tenancy.hosts import TENANT, classify_host
    from oxygis.tenancy.models import Tenant

    site = classify_host(name)
    if site is None or site.kind != TENANT:
        return False
    with using_database(CATALOG):
        return Tenant.objects.filter(slug=site.slug, state__in=Tenant.SERVED).exists()


def _more_file_descriptors() -> None:
    """Every connection is a file descriptor: allow as many as the system lets us."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run(
    *,
    binds: list[str],
    workers: int,
    certfile: str | None,
    keyfile: str | None,
    tls_folder: Path | None = None,
    default_names=(),
) -> int:
    """Serve until interrupted; returns the exit code."""
    _more_file_descriptors()
    config = ServerConfig()
    config.application_path = "oxygis.web.asgi:application"
    config.workers = workers
    config.keep_alive_timeout = KEEP_ALIVE
    config.read_timeout = READ_TIMEOUT
    config.ssl_handshake_timeout = HANDSHAKE_TIMEOUT
    config.wsgi_max_body_size = MAX_BODY
    config.h11_max_incomplete_size = MAX_HEADERS
    config.backlog = 1024
    config.graceful_timeout = 10
    config.include_server_header = False
    config.accesslog = "-"
    config.access_log_format = ACCESS_LOG_FORMAT
    config.errorlog = "-"
    if certfile:
        config.bind = binds
        config.certfile, config.keyfile = certfile, keyfile
        config.tls_folder = str(tls_folder) if tls_folder else None
        config.tls_default_names = tuple(default_names)
    else:
        # TLS ends at the trusted proxy in front (production without a certificate).
        config.bind, config.insecure_bind = [], binds
    return hypercorn_run(config)
