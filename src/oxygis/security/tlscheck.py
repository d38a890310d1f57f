"""The TLS of a live endpoint (S11): protocols, cipher suites, certificate, HSTS.

Judged against Mozilla's "intermediate" server-side TLS profile: TLS 1.2 and 1.3 only,
TLS 1.2 suites both forward-secret (ECDHE/DHE) and authenticated-encryption (GCM,
ChaCha20-Poly1305). Probed with the system OpenSSL one protocol and one suite at a
time, so what we report is what the server agreed to, not what it advertises.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import warnings
from dataclasses import dataclass, field

from .probe import ProbeError, Target

PROTOCOLS = [
    ("TLSv1.0", ssl.TLSVersion.TLSv1),
    ("TLSv1.1", ssl.TLSVersion.TLSv1_1),
    ("TLSv1.2", ssl.TLSVersion.TLSv1_2),
    ("TLSv1.3", ssl.TLSVersion.TLSv1_3),
]
ALLOWED_PROTOCOLS = {"TLSv1.2", "TLSv1.3"}
EXPIRY_WARNING = dt.timedelta(days=21)


@dataclass
class TlsReport:
    protocols: dict[str, bool | None] = field(default_factory=dict)  # None: cannot test here
    weak_ciphers: list[str] = field(default_factory=list)
    ciphers: list[str] = field(default_factory=list)
    certificate_error: str | None = None
    not_after: dt.datetime | None = None
    problems: list[str] = field(default_factory=list)


def _probe_context(version: ssl.TLSVersion, ciphers: str | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # we want to know what it speaks, not trust it
    with warnings.catch_warnings():  # probing TLS 1.0/1.1 is the point: they must be refused
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = version
        context.maximum_version = version
    context.set_ciphers(ciphers or "ALL:@SECLEVEL=0")
    return context


def _handshake(target: Target, context: ssl.SSLContext, timeout: float) -> bool:
    try:
        raw = socket.create_connection((target.address, target.port), timeout=timeout)
    except OSError as exc:
        raise ProbeError(f"cannot connect to {target.address}:{target.port}: {exc}") from None
    try:
        with context.wrap_socket(raw, server_hostname=target.host):
            return True
    except (ssl.SSLError, OSError):
        return False
    finally:
        raw.close()


def _weak(cipher: dict) -> bool:
    """Outside the profile: no forward secrecy (static RSA, PSK) or no AEAD (CBC)."""
    return not (cipher.get("aead") and cipher.get("kea") in ("kx-ecdhe", "kx-dhe"))


def check_tls(
    target: Target, *, cafile: str | None = None, timeout: float = 10, progress=None
) -> TlsReport:
    report = TlsReport()
    for label, version in PROTOCOLS:
        try:
            context = _probe_context(version)
        except (ssl.SSLError, ValueError):
            report.protocols[label] = None
            continue
        try:
            report.protocols[label] = _handshake(target, context, timeout)
        except ssl.SSLError:
            report.protocols[label] = None
    for label, accepted in report.protocols.items():
        if accepted and label not in ALLOWED_PROTOCOLS:
            report.problems.append(f"{label} accepted (only TLS 1.2 and 1.3 should be)")
    if report.protocols.get("TLSv1.2"):
        offered = _probe_context(ssl.TLSVersion.TLSv1_2).get_ciphers()
        for cipher in offered:
            if cipher["protocol"] == "TLSv1.3":  # TLS 1.3 suites are all AEAD and FS
                continue
            name = cipher["name"]
            try:
                context = _probe_context(ssl.TLSVersion.TLSv1_2, name + ":@SECLEVEL=0")
            except ssl.SSLError:
                continue
            if progress is not None:
                progress(f"TLS suites of {target.host}")
            if _handshake(target, context, timeout):
                report.ciphers.append(name)
                if _weak(cipher):
                    report.weak_ciphers.append(name)
        if report.weak_ciphers:
            report.problems.append(
                "TLS 1.2 suites without forward secrecy or AEAD accepted: "
                + ", ".join(report.weak_ciphers)
            )
    # The certificate, as a browser checks it: chain, name, dates.
    verifying = ssl.create_default_context(cafile=cafile)
    try:
        raw = socket.create_connection((target.address, target.port), timeout=timeout)
    except OSError as exc:
        raise ProbeError(f"cannot connect to {target.address}:{target.port}: {exc}") from None
    try:
        with verifying.wrap_socket(raw, server_hostname=target.host) as sock:
            cert = sock.getpeercert()
            report.not_after = dt.datetime.fromtimestamp(
                ssl.cert_time_to_seconds(cert["notAfter"]), dt.UTC
            )
    except ssl.SSLCertVerificationError as exc:
        report.certificate_error = exc.verify_message or str(exc)
        report.problems.append(
            f"certificate not trusted for {target.host}: {report.certificate_error}"
        )
    except (ssl.SSLError, OSError) as exc:
        report.certificate_error = str(exc)
        report.problems.append(f"TLS handshake failed: {exc}")
    finally:
        raw.close()
    if report.not_after is not None:
        left = report.not_after - dt.datetime.now(dt.UTC)
        if left < EXPIRY_WARNING:
            report.problems.append(
                f"certificate expires in {max(left.days, 0)} days ({report.not_after:%Y-%m-%d})"
            )
    return report
