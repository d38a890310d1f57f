"""C10, C11: how passwords are stored, and that nobody can read them back."""

import logging

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password

from oxygis.access.actors import system
from oxygis.audit.models import AuditEvent
from oxygis.tenancy.databases import tenant_context
from tests.tenancy.test_cli import assert_one_line_error, oxygis


def stored_hash(tenant, username):
    with tenant_context(tenant):
        return get_user_model().objects.get(username=username).password


def test_stored_hash_is_pbkdf2_sha512_with_600000_rounds(alpha):
    """C10: the stored hash is PBKDF2-HMAC-SHA512, 600,000 rounds, with a random salt."""
    algorithm, iterations, salt, digest = stored_hash(alpha.tenant, "member").split("$")
    assert algorithm == "pbkdf2_sha512"
    assert int(iterations) == 600_000
    assert len(salt) >= 16 and len(digest) == 88  # 64 bytes of SHA-512, base64
    assert stored_hash(alpha.tenant, "admin").split("$")[2] != salt  # salted per user


def test_older_hashes_are_upgraded_at_next_login(alpha):
    """C10: a PBKDF2-SHA256 hash (Django's default) becomes SHA-512 at the next sign-in."""
    with tenant_context(alpha.tenant):
        user = get_user_model().objects.create(
            username="legacy", password=make_password("Legacy-pass-2024!", hasher="pbkdf2_sha256")
        )
    assert stored_hash(alpha.tenant, "legacy").startswith("pbkdf2_sha256$")
    alpha.client().sign_in("legacy", "Legacy-pass-2024!")
    assert stored_hash(alpha.tenant, "legacy").startswith("pbkdf2_sha512$600000$")
    with tenant_context(alpha.tenant), system(reason="test clean-up"):
        user.delete()


def test_too_few_iterations_are_refused():
    """C10: configuring fewer than 220,000 rounds stops the service with one line."""
    result = oxygis("tenant", "list", env={"OXYGIS_PASSWORD_ITERATIONS": "100000"})
    assert_one_line_error(result, "OXYGIS_PASSWORD_ITERATIONS must be at least 220000")


def test_no_page_shows_a_password_hash(alpha):
    """C11: hashes appear on no page an administrator can open, nor in the audit log."""
    admin = alpha.client()
    admin.sign_in(alpha.owner_username, alpha.owner_password)
    with tenant_context(alpha.tenant):
        member = get_user_model().objects.get(username="member")
        hashes = [u.password for u in get_user_model().objects.all()]
    pages = [
        "/",
        "/settings/users/",
        f"/settings/users/{member.pk}/",
        "/accounts/security/",
        "/settings/audit/",
        "/settings/roles/",
    ]
    for path in pages:
        html = admin.get(path).content.decode()
        assert "pbkdf2_sha512$" not in html, path
        for value in hashes:
            assert value.split("$")[-1] not in html, path
    # No page offers to show or set someone else's password: only a reset.
    assert 'type="password"' not in admin.get(f"/settings/users/{member.pk}/").content.decode()


def test_a_typed_password_is_never_logged_or_audited(alpha, caplog):
    """C11: a wrong or right password typed at sign-in is in no log line and no event."""
    secret = "Typed-Secret-4242!"
    caplog.set_level(logging.DEBUG)
    client = alpha.client()
    client.post("/accounts/login/", {"username": "member", "password": secret})
    client.post("/accounts/login/", {"username": "member", "password": alpha.member_password})
    assert secret not in caplog.text and alpha.member_password not in caplog.text
    with tenant_context(alpha.tenant):
        dumped = " ".join(str(e.details) + e.target for e in AuditEvent.objects.all())
    assert secret not in dumped and alpha.member_password not in dumped
