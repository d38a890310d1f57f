"""Personal API keys: ``oxy_<prefix>_<secret>``; only a digest of the secret is kept.

A key acts as its user, so it is held to what the user's sign-in is held to: an
inactive user's keys stop, and so do the keys of a user the workspace's policy requires
to use two-factor authentication until they have enrolled (S12). Otherwise a password
alone, used once to make a key, would outlive the policy.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.utils import timezone

from oxygis.audit.events import record
from oxygis.tenancy.credentials import note_revoked
from oxygis.tenancy.models import CredentialEvent

from .models import ApiKey, SecurityPolicy
from .twofactor import has_second_factor

MAX_DAYS = 365
NEEDS_TWO_FACTOR = (
    "This key's user must turn on two-factor authentication (the workspace requires it): "
    "their keys work again once they have."
)


class KeyRefused(Exception):
    """A genuine key that may not be used now; the message says why, for its holder."""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_key(user, *, name: str, scope: str, days: int) -> tuple[ApiKey, str]:
    """Create a key for ``user``; return it and the token, which is shown only once."""
    prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    key = ApiKey.objects.create(
        user=user,
        name=name,
        prefix=prefix,
        digest=_digest(secret),
        scope=scope,
        expires_at=timezone.now() + timedelta(days=max(1, min(days, MAX_DAYS))),
    )
    return key, f"oxy_{prefix}_{secret}"


def create_key(request, *, name: str, scope: str, days: int) -> tuple[ApiKey, str]:
    """The signed-in user creates a key for themself (audited)."""
    key, token = issue_key(request.user, name=name, scope=scope, days=days)
    record("apikey.created", request=request, target=f"{name} ({key.prefix})", scope=scope)
    return key, token


def revoke_key(request, key: ApiKey) -> None:
    note_revoked(CredentialEvent.APIKEY_REVOKED, key.prefix)
    key.revoked_at = timezone.now()
    key.save(update_fields=["revoked_at"])
    record("apikey.revoked", request=request, target=f"{key.name} ({key.prefix})")


def held_back_by_policy(user) -> bool:
    """Must ``user`` enrol two-factor authentication before their keys work?"""
    return SecurityPolicy.current().requires_two_factor(user) and not has_second_factor(user)


def authenticate_token(token: str) -> ApiKey | None:
    """The live key for ``token``, or None (unknown, wrong, expired, revoked, inactive).
    Raises KeyRefused for a genuine key whose user does not meet the 2FA policy."""
    parts = (token or "").split("_", 2)  # the secret itself may contain "_"
    if len(parts) != 3 or parts[0] != "oxy":
        return None
    key = ApiKey.objects.select_related("user").filter(prefix=parts[1]).first()
    if key is None or not hmac.compare_digest(key.digest, _digest(parts[2])):
        return None
    now = timezone.now()
    if key.revoked_at or key.expires_at <= now or not key.user.is_active:
        return None
    if held_back_by_policy(key.user):
        raise KeyRefused(NEEDS_TWO_FACTOR)
    if key.last_used_at is None or now - key.last_used_at > timedelta(minutes=1):
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key
