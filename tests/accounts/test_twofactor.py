"""S12: TOTP two-factor authentication, recovery codes, and its enforcement."""

import re
import time

import pytest
from django.test import override_settings

from oxygis.access.actors import system
from oxygis.accounts.models import SecurityPolicy
from oxygis.audit.models import AuditEvent
from oxygis.tenancy.databases import tenant_context
from tests.accounts.test_signin import make_user
from tests.fixtures import secret_on, totp

PASSWORD = "Frank-pass-2026!"


def enrol(client) -> tuple[str, list[str]]:
    """Enrol through the pages; return the secret and the recovery codes shown."""
    page = client.get("/accounts/2fa/setup/")
    assert page.status_code == 200
    qr = client.get("/accounts/2fa/qr.svg")
    assert qr["Content-Type"] == "image/svg+xml" and b"<svg" in qr.content
    secret = secret_on(page.content.decode())
    wrong = client.post("/accounts/2fa/setup/", {"code": "000000"})
    assert "does not match" in wrong.content.decode()
    # Throttled now: even the right code is refused, and the page says to wait.
    early = client.post("/accounts/2fa/setup/", {"code": totp(secret)})
    assert "Too many wrong codes: wait" in early.content.decode()
    assert "does not match" not in early.content.decode()
    time.sleep(1.1)  # django-otp throttles: after a failure, the next try waits a second
    done = client.post("/accounts/2fa/setup/", {"code": totp(secret)})
    assert done.status_code == 200 and "no-store" in done["Cache-Control"]
    codes = re.findall(r"<code>([a-z0-9]{5}-[a-z0-9]{5})</code>", done.content.decode())
    return secret, codes


@pytest.fixture
def frank(alpha):
    user = make_user(alpha.tenant, "frank", PASSWORD)
    yield user
    with tenant_context(alpha.tenant), system(reason="test clean-up"):
        user.delete()


def test_enrol_then_sign_in_needs_the_code(alpha, frank):
    """S12: after enrolment the password alone reaches nothing but the code page."""
    client = alpha.client()
    client.sign_in("frank", PASSWORD)
    secret, codes = enrol(client)
    assert len(codes) == 10 and len(set(codes)) == 10
    client.post("/accounts/logout/")

    client.sign_in("frank", PASSWORD)
    for path in ("/", "/accounts/security/", "/settings/users/", "/accounts/2fa/setup/"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith("/accounts/2fa/verify/"), path
    assert "not valid" in client.post("/accounts/2fa/verify/", {"code": "123456"}).content.decode()
    # Right after a failure even the right code is refused (throttling), then accepted;
    # the page says to wait, not that the right code "is not valid".
    throttled = client.post("/accounts/2fa/verify/", {"code": totp(secret, step_offset=1)})
    assert throttled.status_code == 200
    assert "Too many wrong codes: wait" in throttled.content.decode()
    assert "not valid" not in throttled.content.decode()
    time.sleep(2.1)
    # The next time step: the code used for enrolment cannot be replayed.
    verified = client.post("/accounts/2fa/verify/", {"code": totp(secret, step_offset=1)})
    assert verified.status_code == 302
    assert client.get("/").status_code == 200
    with tenant_context(alpha.tenant):
        actions = set(AuditEvent.objects.filter(target="frank").values_list("action", flat=True))
    assert {"twofactor.enrolled", "twofactor.failure", "login.success"} <= actions


def test_recovery_code_works_once(alpha, frank):
    """S12: a recovery code replaces the app once; used again, it is refused; audited."""
    client = alpha.client()
    client.sign_in("frank", PASSWORD)
    _, codes = enrol(client)
    client.post("/accounts/logout/")

    client.sign_in("frank", PASSWORD)
    assert client.post("/accounts/2fa/verify/", {"code": codes[3].upper()}).status_code == 302
    client.post("/accounts/logout/")
    again = alpha.client()
    again.sign_in("frank", PASSWORD)
    assert again.post("/accounts/2fa/verify/", {"code": codes[3]}).status_code == 200
    assert again.get("/").status_code == 302
    with tenant_context(alpha.tenant):
        used = AuditEvent.objects.get(action="twofactor.recovery_code_used", target="frank")
        assert used.details["remaining"] == 9


def test_recovery_codes_are_not_stored_in_clear(alpha, frank):
    """S12/C11: the database holds no usable copy of the recovery codes."""
    from django_otp.plugins.otp_static.models import StaticToken

    client = alpha.client()
    client.sign_in("frank", PASSWORD)
    _, codes = enrol(client)
    with tenant_context(alpha.tenant):
        stored = set(StaticToken.objects.filter(device__user=frank).values_list("token", flat=True))
    assert len(stored) == 10 and not stored & set(codes)


def test_required_for_everyone_sends_users_to_enrolment_first(alpha, frank):
    """S12: with 2FA required, nothing is reachable before enrolment, then all is."""
    with tenant_context(alpha.tenant):
        SecurityPolicy.objects.filter(pk=1).update(two_factor="everyone")
    try:
        client = alpha.client()
        client.sign_in("frank", PASSWORD)
        for path in ("/", "/accounts/security/", "/accounts/password/", "/settings/audit/"):
            response = client.get(path)
            assert response.status_code == 302, path
            assert response["Location"].startswith("/accounts/2fa/setup/"), path
        assert "requires two-factor" in client.get("/accounts/2fa/setup/").content.decode()
        enrol(client)
        assert client.get("/").status_code == 200
        # ... and it cannot be switched off while required.
        client.post("/accounts/2fa/remove/", {"confirmed": "yes"})
        with tenant_context(alpha.tenant):
            from oxygis.accounts.twofactor import has_two_factor

            assert has_two_factor(frank)
    finally:
        with tenant_context(alpha.tenant):
            SecurityPolicy.objects.filter(pk=1).update(two_factor="optional")


def test_required_for_admins_only(alpha, frank):
    """S12: 'administrators' policy forces the admin, not a plain member."""
    with tenant_context(alpha.tenant):
        SecurityPolicy.objects.filter(pk=1).update(two_factor="admins")
    try:
        member = alpha.client()
        member.sign_in("frank", PASSWORD)
        assert member.get("/").status_code == 200
        admin = alpha.client()
        admin.sign_in(alpha.owner_username, alpha.owner_password)
        assert admin.get("/")["Location"].startswith("/accounts/2fa/setup/")
    finally:
        with tenant_context(alpha.tenant):
            SecurityPolicy.objects.filter(pk=1).update(two_factor="optional")


def test_remove_and_renew_need_recent_authentication(alpha, frank):
    """S12: turning 2FA off or renewing codes asks for the password again when stale."""
    client = alpha.client()
    client.sign_in("frank", PASSWORD)
    secret, _ = enrol(client)
    renewed = client.post("/accounts/2fa/recovery-codes/")
    assert len(re.findall(r"<code>", renewed.content.decode())) == 10
    with override_settings(SUDO_TIMEOUT=-1):  # every authentication is now too old
        response = client.post("/accounts/2fa/remove/", {"confirmed": "yes"})
        assert response["Location"].startswith("/accounts/reauth/")
        assert client.post("/accounts/reauth/", {"secret": "wrong"}).status_code == 200
    time.sleep(1.1)  # the wrong try also counted against the app's codes (throttling)
    back = client.post(
        "/accounts/reauth/?next=/accounts/security/", {"secret": totp(secret, step_offset=1)}
    )
    assert back.status_code == 302 and back["Location"] == "/accounts/security/"
    assert client.post("/accounts/2fa/remove/", {"confirmed": "yes"}).status_code == 302
    with tenant_context(alpha.tenant):
        assert AuditEvent.objects.filter(action="twofactor.removed", target="frank").exists()
