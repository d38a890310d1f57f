"""Password reset by e-mailed single-use link, session list and limits, sudo mode."""

import os
from datetime import timedelta
from urllib.parse import urlsplit

from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.test import override_settings

from oxygis.audit.models import AuditEvent
from oxygis.tenancy.databases import tenant_context
from tests.accounts.test_signin import make_user
from tests.fixtures import link_in, mails_to

PASSWORD, NEW_PASSWORD = "Gina-pass-2026!", "Gina-newpass-2027?"


def request_reset(client, email):
    return client.post("/accounts/password/reset/", {"email": email})


def test_reset_link_works_once_and_ends_every_session(alpha):
    """C11/S12: a reset is an e-mailed link, single-use; it ends all sessions of the user."""
    make_user(alpha.tenant, "gina", PASSWORD)
    elsewhere = alpha.client()
    elsewhere.sign_in("gina", PASSWORD)

    before = len(mails_to("gina@example.test"))
    asker = alpha.client()
    done = request_reset(asker, "GINA@example.test")
    assert done.status_code == 302
    assert "Check your e-mail" in asker.get(done["Location"]).content.decode()
    mails = mails_to("gina@example.test")
    assert len(mails) == before + 1
    message = mails[-1]
    assert message.get_body(preferencelist=("html",)) is not None  # text and HTML parts
    link = link_in(message, "/accounts/reset/")
    assert urlsplit(link).netloc == alpha.host  # on the tenant's own host, HTTPS
    assert PASSWORD not in message.as_string()  # nobody e-mails a password (C11)

    client = alpha.client()
    path = urlsplit(link).path
    form_page = client.get(path, follow=True)
    assert "Choose a new password" in form_page.content.decode()
    set_url = form_page.redirect_chain[-1][0]
    weak = client.post(set_url, {"new_password1": "weak", "new_password2": "weak"})
    assert "at least 10 characters" in weak.content.decode()
    ok = client.post(set_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert ok.status_code == 302
    assert "Every session of your account was ended" in client.get(ok["Location"]).content.decode()

    assert elsewhere.get("/").status_code == 302  # the other session is over
    alpha.client().sign_in("gina", NEW_PASSWORD)
    replay = alpha.client().get(path, follow=True)
    assert "no longer works" in replay.content.decode()
    with tenant_context(alpha.tenant):
        actions = set(
            AuditEvent.objects.filter(target__in=["gina", "GINA@example.test"]).values_list(
                "action", flat=True
            )
        )
    assert {"password.reset_requested", "password.reset"} <= actions


def test_reset_answers_the_same_for_unknown_addresses(alpha):
    """C11: the response does not tell whether an address has an account; no mail sent."""
    make_user(alpha.tenant, "hank", PASSWORD)
    known = request_reset(alpha.client(), "hank@example.test")
    unknown = request_reset(alpha.client(), "nobody@example.test")
    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"]
    assert mails_to("nobody@example.test") == []


def test_reset_link_expires_after_one_hour(alpha, monkeypatch):
    """S12: a link older than an hour no longer works."""
    make_user(alpha.tenant, "ivan", PASSWORD)
    request_reset(alpha.client(), "ivan@example.test")
    path = urlsplit(link_in(mails_to("ivan@example.test")[-1], "/accounts/reset/")).path
    real_now = PasswordResetTokenGenerator._now
    monkeypatch.setattr(
        PasswordResetTokenGenerator, "_now", lambda self: real_now(self) + timedelta(minutes=61)
    )
    page = alpha.client().get(path, follow=True)
    assert "no longer works" in page.content.decode()


def test_eml_files_are_private(alpha):
    """C11: mail written by the embedded backend is readable by its owner only."""
    make_user(alpha.tenant, "jane", PASSWORD)
    request_reset(alpha.client(), "jane@example.test")
    from django.conf import settings

    newest = max(settings.EMAIL_FILE_PATH.glob("*.eml"), key=os.path.getmtime)
    assert oct(newest.stat().st_mode & 0o777) == "0o600"


def test_session_list_and_revoke(alpha):
    """S12: the user sees their sessions and can end one, or all the others."""
    make_user(alpha.tenant, "kim", PASSWORD)
    phone = alpha.client(HTTP_USER_AGENT="Mozilla/5.0 (iPhone) Safari/605.1")
    phone.sign_in("kim", PASSWORD)
    laptop = alpha.client(HTTP_USER_AGENT="Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0")
    laptop.sign_in("kim", PASSWORD)
    page = laptop.get("/accounts/security/").content.decode()
    assert "Safari on iPhone" in page and "Firefox on Linux" in page and "(this one)" in page

    with tenant_context(alpha.tenant):
        from oxygis.accounts.models import UserSession

        phone_row = UserSession.objects.get(user__username="kim", user_agent__contains="iPhone")
    assert laptop.post(f"/accounts/sessions/{phone_row.pk}/end/").status_code == 302
    assert phone.get("/").status_code == 302
    assert laptop.get("/").status_code == 200

    tablet = alpha.client()
    tablet.sign_in("kim", PASSWORD)
    laptop.post("/accounts/sessions/end-others/")
    assert tablet.get("/").status_code == 302 and laptop.get("/").status_code == 200


def test_nobody_can_end_someone_elses_session(alpha):
    """S12: a session id of another user answers 404 and ends nothing."""
    make_user(alpha.tenant, "lee", PASSWORD)
    victim = alpha.client()
    victim.sign_in("member", alpha.member_password)
    with tenant_context(alpha.tenant):
        from oxygis.accounts.models import UserSession

        row = UserSession.objects.filter(user__username="member").latest("created_at")
    attacker = alpha.client()
    attacker.sign_in("lee", PASSWORD)
    assert attacker.post(f"/accounts/sessions/{row.pk}/end/").status_code == 404
    assert victim.get("/").status_code == 200


def test_password_change_ends_other_sessions(alpha):
    """S12: changing the password keeps this session and ends every other one."""
    make_user(alpha.tenant, "mona", PASSWORD)
    other = alpha.client()
    other.sign_in("mona", PASSWORD)
    client = alpha.client()
    client.sign_in("mona", PASSWORD)
    changed = client.post(
        "/accounts/password/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert changed.status_code == 302
    assert client.get("/").status_code == 200
    assert other.get("/").status_code == 302


def test_idle_and_absolute_session_limits(alpha):
    """S12: an idle session and an over-age session are ended on the server side."""
    make_user(alpha.tenant, "nina", PASSWORD)
    client = alpha.client()
    client.sign_in("nina", PASSWORD)
    with override_settings(SESSION_IDLE_TIMEOUT=-1):
        response = client.get("/")
    assert response.status_code == 302 and client.get("/").status_code == 302
    client.sign_in("nina", PASSWORD)
    with override_settings(SESSION_COOKIE_AGE=-1):
        assert client.get("/").status_code == 302
    assert client.get("/").status_code == 302


def test_email_change_needs_recent_authentication(alpha):
    """S12: changing the e-mail address asks for the password after 10 minutes."""
    make_user(alpha.tenant, "olga", PASSWORD)
    client = alpha.client()
    client.sign_in("olga", PASSWORD)
    with override_settings(SUDO_TIMEOUT=-1):
        stale = client.post("/accounts/email/", {"email": "olga.new@example.test"})
        assert stale["Location"] == "/accounts/reauth/?next=%2Faccounts%2Femail%2F"
    page = client.get("/accounts/reauth/?next=/accounts/email/")
    assert "Confirm it is you" in page.content.decode()
    confirmed = client.post("/accounts/reauth/?next=/accounts/email/", {"secret": PASSWORD})
    assert confirmed["Location"] == "/accounts/email/"
    assert client.get("/accounts/email/").status_code == 200
    taken = client.post("/accounts/email/", {"email": "MEMBER@" + alpha.tenant.slug + ".example"})
    assert "already has this e-mail" in taken.content.decode()
    assert client.post("/accounts/email/", {"email": "olga.new@example.test"}).status_code == 302
    with tenant_context(alpha.tenant):
        assert get_user_model().objects.get(username="olga").email == "olga.new@example.test"
        assert AuditEvent.objects.filter(action="email.changed", target="olga").exists()
