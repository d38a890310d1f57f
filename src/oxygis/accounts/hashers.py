"""C10: PBKDF2-HMAC-SHA512, salted, 600,000 rounds by default (as Odoo); never fewer
than 220,000 (settings refuse it; OWASP's floor for SHA-512 is 210,000)."""

import hashlib

from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher


class PBKDF2SHA512PasswordHasher(PBKDF2PasswordHasher):
    algorithm = "pbkdf2_sha512"
    digest = hashlib.sha512

    @property
    def iterations(self) -> int:
        return settings.PASSWORD_PBKDF2_SHA512_ITERATIONS
