"""A local certificate authority and a server certificate for the embedded mode.

``oxygis serve`` speaks HTTPS only (C12). On a developer's machine there is no public
certificate for ``*.localhost``, so we make a small CA under ``var/tls/``: import
``ca.pem`` into a browser (or pass it to curl --cacert) to trust it. Private keys are
written 0600 and never leave that folder.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger("oxygis.web.tls")

CA_LIFETIME = dt.timedelta(days=3650)
LEAF_LIFETIME = dt.timedelta(days=365)
RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True)
class LocalTLS:
    ca_cert: Path
    cert: Path
    key: Path  # the same file as cert: one PEM holding both


def _write_private(path: Path, data: bytes) -> None:
    """Write 0600, atomically: concurrent workers never see half a file."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    fd = os.open(partial, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(partial, path)


def _key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _make_ca(folder: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Oxygis local"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Oxygis local CA ({os.uname().nodename})"),
        ]
    )
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        # The CA can only ever vouch for localhost names: a leaked ca-key.pem cannot
        # be used to impersonate any real site.
        .add_extension(
            x509.NameConstraints(
                permitted_subtrees=[
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_network("127.0.0.0/8")),
                    x509.IPAddress(ipaddress.ip_network("::1/128")),
                ],
                excluded_subtrees=None,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(folder / "ca-key.pem", _key_pem(key))
    _write_private(folder / "ca.pem", cert.public_bytes(serialization.Encoding.PEM))
    (folder / "ca.pem").chmod(0o644)  # the public half, meant to be shared


def _leaf_is_current(cert_path: Path, names: list[str]) -> bool:
    if not cert_path.exists():
        return False
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    if cert.not_valid_after_utc - RENEW_BEFORE < _now():
        return False
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(names) <= set(san.get_values_for_type(x509.DNSName))


def ensure_local_tls(folder: Path, names: list[str], stem: str = "server") -> LocalTLS:
    """Create (or reuse) the CA and a server certificate covering ``names``."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not (folder / "ca.pem").exists() or not (folder / "ca-key.pem").exists():
        _make_ca(folder)
    # Certificate and key in one 0600 file, replaced atomically, so they always match.
    leaf = folder / f"{stem}.pem"
    leaf.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths = LocalTLS(folder / "ca.pem", leaf, leaf)
    if _leaf_is_current(paths.cert, names):
        return paths
    ca_cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key((folder / "ca-key.pem").read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    alt_names = [x509.DNSName(n) for n in names] + [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + LEAF_LIFETIME)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(leaf, cert.public_bytes(serialization.Encoding.PEM) + _key_pem(key))
    return paths


class HostCertificates:
    """Per-host certificates chosen by SNI, issued on first use by the local CA.

    Why: TLS clients (OpenSSL, Chromium) refuse a ``*.localhost`` wildcard (a wildcard
    directly under a top-level name), so each tenant host needs its own name in a
    certificate, including tenants created while the server runs.

    Threat: a client asking for endless made-up names to make us mint and store keys
    (CPU and disk). Only names ``served(name)`` says are ours (existing tenants) get
    one; new ones are issued at a bounded rate (the shared limiter, all workers
    together); at most MAX_FILES are kept on disk (the oldest go) and MAX_CONTEXTS in
    each worker's memory. Anything else gets the default certificate.
    """

    MAX_CONTEXTS = 256
    MAX_FILES = 20_000

    REFUSED_FOR = 30  # seconds a name we do not serve is not looked up again

    def __init__(self, folder: Path, served, *, default_names=()):
        self.folder, self.served = folder, served
        self.default_names = frozenset(default_names)
        self._contexts: OrderedDict[str, object] = OrderedDict()
        self._refused: OrderedDict[str, float] = OrderedDict()
        # One thread for lookups and issuing: the handshake runs in the event loop, and
        # both touch the catalog (one at a time keeps the caches simple).
        self._lookups = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sni")

    def _path(self, name: str) -> Path:
        return self.folder / "hosts" / f"{name}.pem"

    def context_for(self, name: str):
        """The context for ``name``, or None when none may be issued now."""
        import ssl

        from oxygis.core import limiter

        from .server import harden

        if name in self._contexts:
            self._contexts.move_to_end(name)
            return self._contexts[name]
        if not _leaf_is_current(self._path(name), [name]):
            try:
                limiter.take(limiter.CERTIFICATES, "issue")
            except limiter.RateLimited:
                return None
            ensure_local_tls(self.folder, [name], stem=f"hosts/{name}")
            self._bound_disk()
        context = harden(ssl.create_default_context(ssl.Purpose.CLIENT_AUTH))
        context.load_cert_chain(str(self._path(name)))
        self._contexts[name] = context
        while len(self._contexts) > self.MAX_CONTEXTS:
            self._contexts.popitem(last=False)
        return context

    def _bound_disk(self) -> None:
        files = list((self.folder / "hosts").glob("*.pem"))
        if len(files) <= self.MAX_FILES:
            return
        files.sort(key=lambda path: path.stat().st_mtime)
        for path in files[: len(files) - self.MAX_FILES]:
            path.unlink(missing_ok=True)

    def _choose(self, name: str):
        """The context for ``name``, or None (default certificate); in the lookup thread:
        it may query the catalog, which Django forbids in the event loop's thread."""
        if name in self._contexts:
            return self.context_for(name)
        if self._refused.get(name, 0) > time.monotonic():
            return None
        if not self.served(name):
            # Made-up names are remembered a while: one catalog query per name and
            # REFUSED_FOR seconds, however often a client asks for it.
            self._refused[name] = time.monotonic() + self.REFUSED_FOR
            self._refused.move_to_end(name)
            while len(self._refused) > self.MAX_CONTEXTS * 4:
                self._refused.popitem(last=False)
            return None
        return self.context_for(name)

    def _choose_and_close(self, name: str):
        from django.db import close_old_connections

        try:
            return self._choose(name)
        finally:
            close_old_connections()  # no session of this thread outlives the lookup

    def sni_callback(self, ssl_socket, server_name, _context):
        name = (server_name or "").lower()
        if not name or name in self.default_names:
            return None  # the default certificate names it already
        try:
            context = self._lookups.submit(self._choose_and_close, name).result(timeout=5)
            if context is not None:
                ssl_socket.context = context
        except Exception:  # a handshake must never die of our lookup; log and go on
            log.exception("could not choose a certificate for %s", name)
        return None
