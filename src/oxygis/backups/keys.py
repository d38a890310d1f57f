"""The keys of the backup system.

* age recipients (public keys): every backup is encrypted to them, so that neither the
  storage sites nor the backup job can read a backup (C2: a stolen copy is useless).
* the age identity (private key): needed only to restore. In the embedded mode it is
  generated under var/keys/, apart from the backups, with 0600 permissions; in production
  it lives offline and is given only to the host that restores.
* the manifest signing key (Ed25519): a site that alters or forges a manifest is caught.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pyrage
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings

from .errors import BackupError

log = logging.getLogger("oxygis.backups")

IDENTITY_NOTICE = (
    "The private key that decrypts backups was generated at {path}. Anyone holding it can "
    "read every backup: in production keep it offline, away from the backups, and give it "
    "only to the host that restores (OXYGIS_BACKUP_IDENTITY_FILE)."
)


def fingerprint(text: str) -> str:
    return hashlib.sha256(text.strip().encode()).hexdigest()[:16]


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def ensure_embedded_keys() -> None:
    """Embedded mode: generate the age key pair and the signing key once, if not given."""
    folder = Path(settings.BACKUP_KEYS_DIR)
    identity_path = folder / "backup-identity.txt"
    recipient_path = folder / "backup-recipient.txt"
    if not settings.BACKUP_RECIPIENTS and not recipient_path.exists():
        identity = pyrage.x25519.Identity.generate()
        recipient = str(identity.to_public())
        _write_private(
            identity_path,
            f"# Oxygis backup identity, public key: {recipient}\n{identity}\n",
        )
        recipient_path.write_text(recipient + "\n")
        log.warning(IDENTITY_NOTICE.format(path=identity_path))
    signing_path = folder / "backup-signing.pem"
    if not settings.BACKUP_SIGNING_KEY and not signing_path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_private(signing_path, pem.decode())


@dataclass(frozen=True)
class Keys:
    recipients: tuple[str, ...]
    identity_path: Path | None
    signing_pem: str

    @property
    def recipient_fingerprints(self) -> list[str]:
        return [fingerprint(r) for r in self.recipients]

    def age_recipients(self):
        try:
            return [pyrage.x25519.Recipient.from_str(r) for r in self.recipients]
        except pyrage.RecipientError:
            raise BackupError(
                "OXYGIS_BACKUP_RECIPIENTS holds a value that is not an age public key"
            ) from None

    def age_identities(self):
        if self.identity_path is None:
            raise BackupError(
                "no backup private key on this host: set OXYGIS_BACKUP_IDENTITY_FILE to restore"
            )
        try:
            lines = self.identity_path.read_text().splitlines()
        except OSError as exc:
            raise BackupError(
                f"cannot read the backup private key {self.identity_path}: {exc.strerror}"
            ) from None
        found = []
        for line in lines:
            line = line.strip()
            if line and not line.startswith("#"):
                try:
                    found.append(pyrage.x25519.Identity.from_str(line))
                except pyrage.IdentityError:
                    raise BackupError(
                        f"{self.identity_path} does not hold an age private key"
                    ) from None
        if not found:
            raise BackupError(f"{self.identity_path} does not hold an age private key")
        return found

    def _signing_key(self) -> Ed25519PrivateKey:
        key = serialization.load_pem_private_key(self.signing_pem.encode(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise BackupError("OXYGIS_BACKUP_SIGNING_KEY must be an Ed25519 private key (PEM)")
        return key

    def signing_seed(self) -> bytes:
        """The signing key's raw 32 bytes: only to derive other secrets from (pitr)."""
        return self._signing_key().private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    @property
    def signing_key_id(self) -> str:
        raw = (
            self._signing_key()
            .public_key()
            .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        )
        return hashlib.sha256(raw).hexdigest()[:16]

    def sign(self, data: bytes) -> str:
        return base64.b64encode(self._signing_key().sign(data)).decode()

    def check(self, data: bytes, signature: str) -> bool:
        try:
            self._signing_key().public_key().verify(base64.b64decode(signature), data)
        except (InvalidSignature, ValueError):
            return False
        return True


@cache
def configured_keys() -> Keys:
    """The keys from the settings, or (embedded mode) those generated under var/keys/."""
    folder = Path(settings.BACKUP_KEYS_DIR)
    if not settings.PRODUCTION:
        ensure_embedded_keys()
    recipients = tuple(settings.BACKUP_RECIPIENTS) or tuple(
        (folder / "backup-recipient.txt").read_text().split()
    )
    identity = settings.BACKUP_IDENTITY_FILE
    if identity is None and (folder / "backup-identity.txt").exists():
        identity = folder / "backup-identity.txt"
    signing = settings.BACKUP_SIGNING_KEY or (folder / "backup-signing.pem").read_text()
    return Keys(recipients, Path(identity) if identity else None, signing)
