"""A local certificate authority and a server certificate for the embedded mode.

``oxygis serve`` speaks HTTPS only (C12). On a developer's machine there is no public
certificate for ``*.localhost``, so we make a small CA under ``var/tls/``: import
``ca.pem`` into a browser (or pass it to curl --cacert) to trust it. Private keys are
written 0600 and never leave that folder.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

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
    """

    def __init__(self, folder: Path, domain: str, accepts):
        self.folder, self.domain, self.accepts = folder, domain, accepts
        self._contexts: dict[str, object] = {}

    def context_for(self, name: str):
        import ssl

        if name not in self._contexts:
            tls = ensure_local_tls(self.folder, [name], stem=f"hosts/{name}")
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(str(tls.cert), str(tls.key))
            self._contexts[name] = context
        return self._contexts[name]

    def sni_callback(self, ssl_socket, server_name, _context):
        if server_name and self.accepts(server_name.lower()):
            ssl_socket.context = self.context_for(server_name.lower())
        return None  # anything else gets the default certificate
