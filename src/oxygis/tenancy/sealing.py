"""Seal secrets kept in the catalog (database role passwords) with a key derived from
the service's secret key, so that a copy of the catalog alone reveals none of them.

Rotation: keys in ``SECRET_KEY_FALLBACKS`` still open old seals; ``seal`` uses the newest.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


class SealError(RuntimeError):
    pass


def _fernet_for(secret: str) -> Fernet:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"oxygis catalog seal v1"
    ).derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def _keys() -> MultiFernet:
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet([_fernet_for(s) for s in secrets])


def seal(plaintext: str) -> str:
    return _keys().encrypt(plaintext.encode()).decode()


def unseal(token: str) -> str:
    try:
        return _keys().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SealError(
            "a sealed catalog secret cannot be opened: was OXYGIS_SECRET_KEY changed "
            "without keeping the old one in OXYGIS_SECRET_KEY_FALLBACKS?"
        ) from None
