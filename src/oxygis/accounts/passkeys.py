"""S12: passkeys (WebAuthn), with django-otp-webauthn on py_webauthn: a second factor
beside TOTP, and passwordless sign-in.

The relying party is the tenant: its ID is the tenant's host, its origin the tenant's
canonical address (``site_url``), both from the settings and the tenant bound by the
host middleware, never from a header the client chose. So a passkey made for one tenant
is useless on another (the browser will not offer it, and the signature names the
other RP ID), and each tenant's credentials are in its own database.

What each guard stops: the ceremony's challenge is kept in the session and spent once
(replay); registration needs a recent authentication (sudo: a stolen session cannot
add the thief's passkey for good) and, when the person already has a second factor, a
verified session; the sign-in step pays the shared limiter like a password check; a
disabled user's passkey opens nothing; a person of the tenant's directory or identity
provider uses a passkey as their second factor only, never to sign in alone (the
directory or provider must say, at each sign-in, that they may still come in).
"""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext as _
from django_otp_webauthn.helpers import WebAuthnHelper
from django_otp_webauthn.models import WebAuthnCredential

from oxygis.audit.events import record
from oxygis.tenancy.credentials import note_revoked
from oxygis.tenancy.hosts import site_url, tenant_host
from oxygis.tenancy.models import CredentialEvent


def relying_party_id(request) -> str:
    return tenant_host(request.tenant.slug)


def relying_party_name(request) -> str:
    return request.tenant.name


class TenantWebAuthnHelper(WebAuthnHelper):
    """One relying party per tenant (see the module docstring)."""

    def get_allowed_origins(self) -> list[str]:
        return [site_url(self.request.tenant.slug, "")]


def passkeys_of(user):
    return WebAuthnCredential.objects.filter(user=user, confirmed=True).order_by("created_at")


def has_passkey(user) -> bool:
    return passkeys_of(user).exists()


class LastSecondFactor(Exception):
    pass


def remove(request, passkey_id: int) -> bool:
    """Remove one of the signed-in person's passkeys; audited. Refused for the last
    second factor of someone the 2FA policy holds to one (LastSecondFactor)."""
    from .twofactor import has_two_factor, two_factor_required

    passkey = passkeys_of(request.user).filter(pk=passkey_id).first()
    if passkey is None:
        return False
    last = passkeys_of(request.user).count() == 1 and not has_two_factor(request.user)
    if last and two_factor_required(request, request.user):
        raise LastSecondFactor(_("Your workspace requires a second factor: add another first."))
    # In the catalog first: a restore of an older backup must not bring it back (C4).
    note_revoked(CredentialEvent.PASSKEY_REMOVED, passkey.credential_id_sha256)
    with transaction.atomic(using=WebAuthnCredential.objects.db):
        name = passkey.name
        passkey.delete()
        record("passkey.removed", request=request, target=request.user.get_username(), name=name)
    return True


def note_added(request, passkey_id: int) -> None:
    passkey = passkeys_of(request.user).filter(pk=passkey_id).first()
    if passkey is not None:
        record(
            "passkey.added", request=request, target=request.user.get_username(), name=passkey.name
        )
