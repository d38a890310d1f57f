"""Sign-in by username or e-mail, one message for every failure, lockout."""

import re

from django.contrib.auth import get_user_model
from django.test import override_settings

from oxygis.access.actors import system
from oxygis.accounts import hashers
from oxygis.audit.models import AuditEvent
from oxygis.tenancy.databases import tenant_context
from tests.fixtures import without_tokens


def make_user(tenant, username, password, **fields):
    with tenant_context(tenant):
        User = get_user_model()
        with system(reason="test set-up: replace the user"):  # deletion checks orders
            User.objects.filter(username=username).delete()
        user = User(username=username, email=f"{username}@example.test", **fields)
        user.set_password(password)
        user.save()
        return user


def error_text(response) -> str:
    return re.sub(r'value="[^"]*"', "", without_tokens(response))


def test_sign_in_by_username_or_email_any_case(alpha):
    """S12: the username or the e-mail address, case-insensitively."""
    make_user(alpha.tenant, "Carol", "Carol-pass-2026!")
    for name in ("Carol", "carol", "carol@example.test", "CAROL@Example.Test"):
        alpha.client().sign_in(name, "Carol-pass-2026!")


def test_unknown_user_and_wrong_password_look_the_same(alpha, monkeypatch):
    """C11/S12: one message, and the password hasher runs even for an unknown name, so the
    timing does not tell whether an account exists."""
    calls = []
    original = hashers.PBKDF2SHA512PasswordHasher.encode

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(hashers.PBKDF2SHA512PasswordHasher, "encode", counting)
    client = alpha.client(REMOTE_ADDR="10.9.0.1")
    unknown = client.post(
        "/accounts/login/", {"username": "nobody-here", "password": "Xx-1234567!"}
    )
    assert len(calls) == 1
    wrong = client.post("/accounts/login/", {"username": "member", "password": "Xx-1234567!"})
    assert unknown.status_code == wrong.status_code == 200
    assert "Please enter a correct username and password." in unknown.content.decode()
    unknown_text = error_text(unknown).replace("nobody-here", "")
    wrong_text = error_text(wrong).replace("member", "")
    assert unknown_text == wrong_text


def test_lockout_after_five_failures_per_user_and_address(alpha):
    """S12: 5 failures for one name from one address lock it for 15 minutes, even with the
    right password; another address is unaffected; an admin can unlock; all audited."""
    user = make_user(alpha.tenant, "dave", "Dave-pass-2026!")
    attacker = alpha.client(REMOTE_ADDR="203.0.113.7")
    for _ in range(5):
        response = attacker.post(
            "/accounts/login/", {"username": "dave", "password": "Guess-1234!"}
        )
        assert response.status_code in (200, 429)
    locked = attacker.post("/accounts/login/", {"username": "dave", "password": "Dave-pass-2026!"})
    assert locked.status_code == 429
    assert "Too many attempts" in locked.content.decode()
    # The same user from elsewhere is not locked out by the attacker.
    alpha.client(REMOTE_ADDR="198.51.100.9").sign_in("dave", "Dave-pass-2026!")
    with tenant_context(alpha.tenant):
        assert AuditEvent.objects.filter(action="login.locked_out", target="dave").exists()

    admin = alpha.client()
    admin.sign_in(alpha.owner_username, alpha.owner_password)
    assert "Locked out" in admin.get("/settings/users/").content.decode()
    assert admin.post(f"/settings/users/{user.pk}/unlock/").status_code == 302
    attacker.sign_in("dave", "Dave-pass-2026!")
    with tenant_context(alpha.tenant):
        assert AuditEvent.objects.filter(action="login.unlocked", target="dave").exists()


def test_lockout_limit_is_a_setting(alpha):
    """S12: the number of failures is configuration (OXYGIS_LOCKOUT_FAILURES)."""
    make_user(alpha.tenant, "erin", "Erin-pass-2026!")
    with override_settings(AXES_FAILURE_LIMIT=2):
        client = alpha.client(REMOTE_ADDR="203.0.113.8")
        for _ in range(2):
            client.post("/accounts/login/", {"username": "erin", "password": "Nope-1234!"})
        response = client.post(
            "/accounts/login/", {"username": "erin", "password": "Erin-pass-2026!"}
        )
        assert response.status_code == 429


def test_audit_records_sign_in_success_and_failure(alpha):
    """S12: successes and failures are in the tenant's audit log, readable by its admin."""
    client = alpha.client(REMOTE_ADDR="192.0.2.44")
    client.post("/accounts/login/", {"username": "member", "password": "Wrong-pass-1!"})
    client.sign_in("member", alpha.member_password)
    with tenant_context(alpha.tenant):
        actions = set(AuditEvent.objects.filter(ip="192.0.2.44").values_list("action", flat=True))
    assert {"login.failure", "login.success"} <= actions
    admin = alpha.client()
    admin.sign_in(alpha.owner_username, alpha.owner_password)
    page = admin.get("/settings/audit/").content.decode()
    assert "Failed sign-in" in page and "192.0.2.44" in page
    assert alpha.client().get("/settings/audit/").status_code == 302  # anonymous: sign in
    member = alpha.client()
    member.sign_in("member", alpha.member_password)
    assert member.get("/settings/audit/").status_code == 403
