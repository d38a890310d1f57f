"""Run the WSGI application under gunicorn, HTTPS only, TLS 1.2 or newer."""

from __future__ import annotations

import ssl

from gunicorn.app.base import BaseApplication

# The path only, never the query string: later features put tokens in URLs.
ACCESS_LOG_FORMAT = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms'


# TLS 1.2 suites with forward secrecy and authenticated encryption only (no CBC: LUCKY13
# and its kin); TLS 1.3's suites are all AEAD.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def harden(context: ssl.SSLContext) -> ssl.SSLContext:
    """TLS 1.2 or newer (C12), AEAD suites only."""
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    return context


def tls_context(config, default_ssl_context_factory):
    """gunicorn hook: the hardened context; in the embedded mode, pick each tenant host's
    certificate by SNI."""
    context = harden(default_ssl_context_factory())
    if _host_certificates is not None:
        context.sni_callback = _host_certificates.sni_callback
    return context


_host_certificates = None


class OxygisServer(BaseApplication):
    def __init__(self, options: dict):
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from oxygis.wsgi import application

        return application


def run(
    *,
    binds: list[str],
    workers: int,
    certfile: str | None,
    keyfile: str | None,
    host_certificates=None,
) -> None:
    global _host_certificates
    _host_certificates = host_certificates
    options = {
        "bind": binds,
        "workers": workers,
        "timeout": 60,
        "graceful_timeout": 10,
        "accesslog": "-",
        "access_log_format": ACCESS_LOG_FORMAT,
        "errorlog": "-",
        # Forwarded headers are judged by TrustedProxyMiddleware, not by gunicorn.
        "forwarded_allow_ips": "",
        "proxy_allow_ips": "",
        "limit_request_line": 8190,
    }
    if certfile:
        options |= {"certfile": certfile, "keyfile": keyfile, "ssl_context": tls_context}
    OxygisServer(options).run()
