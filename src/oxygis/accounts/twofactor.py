"""S12: TOTP two-factor authentication (django-otp) with 10 single-use recovery codes."""

from __future__ import annotations

import io
import re
import secrets

import segno
from django.db import transaction
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from oxygis.audit.events import record
from oxygis.tenancy.credentials import note_revoked
from oxygis.tenancy.models import CredentialEvent

RECOVERY_CODES = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no look-alikes


def has_two_factor(user) -> bool:
    """An authenticator app (TOTP) is enrolled."""
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def has_second_factor(user) -> bool:
    """An authenticator app or a passkey: what the 2FA policy asks for (S12)."""
    from .passkeys import has_passkey

    return has_two_factor(user) or has_passkey(user)


PENDING_DEVICE = "oxygis_pending_totp"


def pending_device(request) -> TOTPDevice:
    """The unconfirmed device this session is enrolling, created on first call.

    Bound to the session that started the enrolment (S12): another session of the same
    user, say one opened with a stolen password, never sees that secret; it would start
    (and see) its own, which the victim's app does not hold."""
    user = request.user
    device = TOTPDevice.objects.filter(
        pk=request.session.get(PENDING_DEVICE), user=user, confirmed=False
    ).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
        request.session[PENDING_DEVICE] = device.pk
    return device


def qr_svg(device: TOTPDevice) -> bytes:
    out = io.BytesIO()
    segno.make(device.config_url, error="m").save(out, kind="svg", scale=5, border=2)
    return out.getvalue()


def secret_base32(device: TOTPDevice) -> str:
    import base64

    return base64.b32encode(device.bin_key).decode().rstrip("=")


def _stored_form(code: str) -> str:
    """Recovery codes are kept only as a keyed hash: a copy of the database alone does
    not give a way past the second factor."""
    from django.utils.crypto import salted_hmac

    return salted_hmac("oxygis.recovery-code", code.lower()).hexdigest()[:16]


def new_recovery_codes(user) -> list[str]:
    """Replace the user's recovery codes; the new ones are shown once, stored hashed."""
    codes = [
        "-".join("".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(5)) for _ in range(2))
        for _ in range(RECOVERY_CODES)
    ]
    with transaction.atomic(using=StaticDevice.objects.db):
        device, _ = StaticDevice.objects.get_or_create(user=user, name="Recovery codes")
        device.token_set.all().delete()
        StaticToken.objects.bulk_create(
            StaticToken(device=device, token=_stored_form(c)) for c in codes
        )
    return codes


def wait_seconds(devices) -> int:
    """How long django-otp's throttling still refuses codes for any of ``devices`` (0:
    not throttled). A throttled device answers every code "no", the right one too, so
    the page must say "wait", not "this code does not match"."""
    wait = 0
    now = timezone.now()
    for device in devices:
        allowed, data = device.verify_is_allowed()
        if not allowed and data and data.get("locked_until"):
            wait = max(wait, int((data["locked_until"] - now).total_seconds()) + 1)
    return wait


def confirm_enrolment(request, device: TOTPDevice, code: str) -> list[str] | None:
    """Confirm the pending device with a code from the app; return new recovery codes."""
    if not device.verify_token(code.replace(" ", "")):
        return None
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    TOTPDevice.objects.filter(user=device.user, confirmed=False).delete()
    request.session.pop(PENDING_DEVICE, None)
    codes = new_recovery_codes(device.user)
    record("twofactor.enrolled", request=request, target=device.user.get_username())
    return codes


# Recovery codes are shown in lower case; a password must hold an upper-case letter.
_CODE = re.compile(r"^(\d{6}|[a-z2-9]{5}-?[a-z2-9]{5})$")


def looks_like_a_code(text: str) -> bool:
    """A TOTP code or a recovery code, as opposed to a password (which the policy says
    holds an upper-case letter, a lower-case one, a digit and a special character)."""
    return bool(_CODE.match(text.replace(" ", "")))


def verify_second_factor(request, user, code: str):
    """The confirmed device that accepts ``code`` (TOTP first, then a recovery code)."""
    code = code.strip().replace(" ", "").lower()
    for device in TOTPDevice.objects.filter(user=user, confirmed=True):
        if device.verify_is_allowed()[0] and device.verify_token(code):
            return device
    for device in StaticDevice.objects.filter(user=user, confirmed=True):
        if device.verify_token(_stored_form(code)):  # django-otp deletes a used token
            record(
                "twofactor.recovery_code_used",
                actor=user,
                request=request,
                target=user.get_username(),
                remaining=device.token_set.count(),
            )
            return device
    record("twofactor.failure", actor=user, request=request, target=user.get_username())
    return None


def remove_two_factor(request, user) -> None:
    note_revoked(CredentialEvent.TWOFACTOR_REMOVED, user.pk)
    TOTPDevice.objects.filter(user=user).delete()
    StaticDevice.objects.filter(user=user).delete()
    record("twofactor.removed", request=request, target=user.get_username())


def two_factor_required(request, user) -> bool:
    """Must ``user`` have 2FA here? Always on the platform console (staff, C14); on a
    tenant host, as its security policy says."""
    from .models import SecurityPolicy

    return getattr(request, "is_console", False) or SecurityPolicy.current().requires_two_factor(
        user
    )
