"""Passkeys (S12) on the server side: one relying party per tenant, registration only
after a recent sign-in, removal audited and bounded by the 2FA policy. The ceremonies
themselves run in Chromium (tests/e2e/test_external_signin_browser.py)."""

from __future__ import annotations

import hashlib
import json

from django.contrib.auth import get_user_model
from django.test import override_settings
from django_otp_webauthn.models import WebAuthnCredential

from oxygis.accounts.models import SecurityPolicy
from oxygis.audit.models import AuditEvent
from oxygis.tenancy.databases import tenant_context
from oxygis.tenancy.models import CredentialEvent

BEGIN_SIGN_IN = "/accounts/webauthn/authentication/begin/"
BEGIN_REGISTRATION = "/accounts/webauthn/registration/begin/"


def begin(client, url):
    return client.post(url, "{}", content_type="application/json")


def a_passkey(personas, username, name="phone"):
    with tenant_context(personas.tenant):
        user = get_user_model().objects.get(username=username)
        return WebAuthnCredential.objects.create(
            user=user,
            name=name,
            credential_id=name.encode(),
            credential_id_sha256=hashlib.sha256(name.encode()).hexdigest(),
            public_key=b"unused",
            confirmed=True,
        )


def test_each_tenant_is_its_own_relying_party(alpha, bravo):
    """S12: a ceremony on a tenant's host names that host as the relying party, so a
    passkey made for one tenant is never offered, nor valid, on another."""
    for personas in (alpha, bravo):
        options = json.loads(begin(personas.client(), BEGIN_SIGN_IN).content)
        assert options["rpId"] == personas.host
        assert options["userVerification"] == "required"  # passwordless: the device checks


def test_registration_needs_a_signed_in_and_recent_session(alpha):
    """S12: nobody anonymous registers a passkey, and a session older than the
    re-authentication window (say, a stolen one) cannot add its thief's passkey."""
    assert begin(alpha.client(), BEGIN_REGISTRATION).status_code in (302, 401, 403)
    member = alpha.client()
    member.sign_in(alpha.member_username, alpha.member_password)
    options = json.loads(begin(member, BEGIN_REGISTRATION).content)
    assert options["rp"]["id"] == alpha.host
    assert options["authenticatorSelection"]["residentKey"] == "required"
    with override_settings(SUDO_TIMEOUT=-1):
        response = begin(member, BEGIN_REGISTRATION)
        assert response.status_code == 403
        assert json.loads(response.content)["code"] == "reauthentication_required"


def test_removing_a_passkey_is_audited_and_the_last_second_factor_stays(tenant_factory):
    """S12: removal is recorded (here and, for restores, in the catalog); with 2FA
    required, the last second factor cannot be removed."""
    made = tenant_factory()
    from tests.fixtures import HttpsClient, verified_by

    class Personas:
        tenant = made.tenant

    first = a_passkey(Personas, "admin", "phone")
    second = a_passkey(Personas, "admin", "laptop")
    with tenant_context(made.tenant):
        SecurityPolicy.objects.update(two_factor=SecurityPolicy.TWO_FACTOR_EVERYONE)
    client = HttpsClient(f"{made.tenant.slug}.localhost")
    client.sign_in("admin", made.admin_password)
    # A passkey is a second factor: after the password, only the verification step.
    assert client.get("/")["Location"].startswith("/accounts/2fa/verify/")
    verify = client.get("/accounts/2fa/verify/").content.decode()
    assert "Use my passkey" in verify and "id_code" not in verify
    verified_by(client, made.tenant, first)
    client.post(f"/accounts/passkeys/{second.pk}/remove/", {"confirmed": "yes"})
    page = client.get("/accounts/passkeys/").content.decode()
    assert "laptop" not in page and "phone" in page
    client.post(f"/accounts/passkeys/{first.pk}/remove/", {"confirmed": "yes"})
    page = client.get("/accounts/passkeys/", follow=True).content.decode()
    assert "requires a second factor" in page and "phone" in page
    with tenant_context(made.tenant):
        assert AuditEvent.objects.filter(action="passkey.removed").count() == 1
    assert CredentialEvent.objects.filter(
        tenant=made.tenant,
        kind=CredentialEvent.PASSKEY_REMOVED,
        subject=second.credential_id_sha256,
    ).exists()


def test_a_ceremony_must_be_begun_here_and_is_not_on_the_console(alpha):
    """S12: completing a registration that this session did not begin is refused (the
    challenge lives in the session, spent once); the scripts' catalogue is public; the
    console (staff: password and TOTP, C14) has no passkey or OpenID routes."""
    member = alpha.client()
    member.sign_in(alpha.member_username, alpha.member_password)
    response = member.post(
        "/accounts/webauthn/registration/complete/", "{}", content_type="application/json"
    )
    assert response.status_code == 400 and json.loads(response.content)["code"] == "invalid_state"
    assert alpha.client().get("/accounts/webauthn/jsi18n/").status_code == 200
    from tests.fixtures import HttpsClient

    console = HttpsClient("console.localhost")
    for path in ("/accounts/passkeys/", "/accounts/oidc/start/", "/accounts/oidc/callback/"):
        assert console.get(path).status_code == 404, path
