"""Finding 11 of the attack run (issue 10): a restored database must not trust old
credentials. Side by side, the copy starts with no session, no API key, no reset,
invitation or customer link valid; onto live (and on rollback), what was revoked after
the backup point stays revoked. Each test fails on the code before the fix."""

from __future__ import annotations

import re
from decimal import Decimal
from urllib.parse import urlsplit

from django.contrib.auth import get_user_model

from oxygis.access.actors import acting_as, system
from oxygis.accounts.apikeys import issue_key
from oxygis.backups import restore, service
from oxygis.backups.models import Restore
from oxygis.platform.provisioning import drop_tenant
from oxygis.sales import services
from oxygis.sales.models import Contact
from oxygis.tenancy.databases import forget_tenant_database, tenant_context
from oxygis.tenancy.models import Tenant
from tests.fixtures import HttpsClient, link_in, mails_to, verified_by

PASSWORD, NEW_PASSWORD = "Otto-pass-2026!", "Otto-newpass-2027?"


def people(tenant) -> dict:
    """otto (will change his password), pia (will be deactivated), quin (keeps a key)."""
    User = get_user_model()
    made = {}
    with tenant_context(tenant):
        for name in ("otto", "pia", "quin"):
            user = User(username=name, email=f"{name}@restored.example", is_superuser=True)
            user.set_password(PASSWORD)
            user.save()
            made[name] = user
    forget_tenant_database(tenant)
    return made


def client_of(tenant, **kwargs) -> HttpsClient:
    return HttpsClient(f"{tenant.slug}.localhost", **kwargs)


def signed_in(tenant, username, password=PASSWORD) -> HttpsClient:
    client = client_of(tenant)
    client.sign_in(username, password)
    return client


def api_status(tenant, token) -> int:
    return client_of(tenant, HTTP_AUTHORIZATION=f"Bearer {token}").get("/api/v1/orders").status_code


def with_cookies(tenant, cookies) -> HttpsClient:
    """Another client presenting a copy of ``cookies`` (a replay by hand)."""
    client = client_of(tenant)
    for name, morsel in cookies.items():
        client.cookies[name] = morsel.value
    return client


def test_finding_11_a_side_by_side_copy_trusts_nothing_of_the_original(data_tenant, sites):
    """C4/C9 (finding 11): in the restored copy, the original's session cookie, its API
    key, a reset link and a customer link all fail; people sign in with their password,
    but a password changed after the backup point must be reset."""
    tenant = data_tenant.tenant
    users = people(tenant)
    browser = signed_in(tenant, "quin")
    with tenant_context(tenant):
        _, token = issue_key(users["quin"], name="sync", scope="read", days=30)
    forget_tenant_database(tenant)
    asker = client_of(tenant)
    asker.post("/accounts/password/reset/", {"email": "pia@restored.example"})
    reset_path = urlsplit(link_in(mails_to("pia@restored.example")[-1], "/accounts/reset/")).path
    with tenant_context(tenant), system(reason="test: a customer link"):
        customer = Contact.objects.create(name="Linked", email="linked@restored.example")
    with tenant_context(tenant), acting_as(users["quin"]):
        order = services.create_order(
            customer=customer,
            lines=[services.LineInput("Desk", Decimal(1), Decimal("10.00"), Decimal("21"))],
        )
    forget_tenant_database(tenant)
    browser.post(f"/sales/orders/{order.pk}/email/")
    portal = urlsplit(link_in(mails_to("linked@restored.example")[-1], "/portal/order/"))

    backup = service.run_backup(service.tenant_target(tenant), sites=sites)
    # After the backup point, otto changes his password.
    otto = signed_in(tenant, "otto")
    otto.post(
        "/accounts/password/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    run = restore.request_restore(backup, Restore.SIDE_BY_SIDE, "operator (test)")
    restore.perform(run, sites=sites)
    copy = Tenant.objects.get(slug=run.new_slug)
    try:
        assert copy.token_salt != tenant.token_salt
        assert with_cookies(copy, browser.cookies).get("/").status_code == 302
        assert api_status(copy, token) == 401
        assert "no longer works" in client_of(copy).get(reset_path, follow=True).content.decode()
        assert client_of(copy).get(f"{portal.path}?{portal.query}").status_code == 404
        signed_in(copy, "quin")  # people are there, with their passwords of the time
        refused = client_of(copy).post(
            "/accounts/login/", {"username": "otto", "password": PASSWORD}
        )
        assert refused.status_code == 200  # the old password of otto opens nothing
        # And the original still trusts what it should.
        assert browser.get("/").status_code == 200 and api_status(tenant, token) == 200
    finally:
        drop_tenant(copy)


def test_finding_11_a_live_restore_keeps_what_was_revoked_since(data_tenant, sites):
    """C4 (finding 11): revoked after the backup point, then restored onto live: the
    API key stays revoked, the ended session stays ended, the deactivated user stays out,
    the changed password's old value opens nothing; and the same after a rollback of
    what was revoked while the restored database was live."""
    tenant = data_tenant.tenant
    users = people(tenant)
    with tenant_context(tenant):
        revoked_key, revoked_token = issue_key(users["quin"], name="old", scope="read", days=30)
        _, kept_token = issue_key(users["quin"], name="kept", scope="read", days=30)
    forget_tenant_database(tenant)
    stolen = signed_in(tenant, "quin")
    backup = service.run_backup(service.tenant_target(tenant), sites=sites)

    # After the backup point: quin revokes a key and ends the stolen session; an admin
    # deactivates pia; otto changes his password.
    quin = signed_in(tenant, "quin")
    keys_page = quin.get("/accounts/api-keys/").content.decode()
    assert "oxy_" in keys_page
    quin.post(f"/accounts/api-keys/{revoked_key.pk}/revoke/", {"confirmed": "yes"})
    quin.post("/accounts/sessions/end-others/")
    assert stolen.get("/").status_code == 302
    admin = signed_in(tenant, "otto")
    admin.post(f"/settings/users/{users['pia'].pk}/", {"is_active": ""})
    admin.post(
        "/accounts/password/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert api_status(tenant, revoked_token) == 401

    run = restore.request_restore(backup, Restore.LIVE, "operator (test)")
    restore.perform(run, sites=sites)
    assert api_status(tenant, revoked_token) == 401
    assert api_status(tenant, kept_token) == 200
    assert stolen.get("/").status_code == 302
    for username in ("pia", "otto"):
        response = client_of(tenant).post(
            "/accounts/login/", {"username": username, "password": PASSWORD}
        )
        assert response.status_code == 200, username  # not signed in
    # otto sets a new password by e-mail, as anyone whose password is unusable.
    client_of(tenant).post("/accounts/password/reset/", {"email": "otto@restored.example"})
    path = urlsplit(link_in(mails_to("otto@restored.example")[-1], "/accounts/reset/")).path
    resetter = client_of(tenant)
    form = resetter.get(path, follow=True)
    resetter.post(
        form.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    )
    otto = signed_in(tenant, "otto", NEW_PASSWORD)

    # While the restored database is live, the kept key is revoked; a rollback must not
    # bring it back.
    page = otto.get("/accounts/api-keys/").content.decode()
    assert page  # otto's own keys page answers
    quin = signed_in(tenant, "quin")
    kept_id = re.findall(
        r'action="/accounts/api-keys/(\d+)/revoke/"',
        quin.get("/accounts/api-keys/").content.decode(),
    )
    assert kept_id
    for key_id in kept_id:
        quin.post(f"/accounts/api-keys/{key_id}/revoke/", {"confirmed": "yes"})
    assert api_status(tenant, kept_token) == 401
    restore.roll_back(Restore.objects.get(pk=run.pk), "operator (test)")
    assert api_status(tenant, kept_token) == 401
    assert quin.get("/").status_code == 302  # every session ended by the swap


def test_credential_events_are_kept_as_long_as_a_backup_may_need_them(data_tenant, sites):
    """C4: events older than every restorable backup of their tenant are pruned by the
    worker's housekeeping; newer ones stay."""
    from datetime import timedelta

    from django.utils import timezone

    from oxygis.backups.credentials import MARGIN, prune_events
    from oxygis.tenancy.models import CredentialEvent

    tenant = data_tenant.tenant
    backup = service.run_backup(service.tenant_target(tenant), sites=sites)
    old = backup.started_at - MARGIN - timedelta(minutes=1)
    for at, subject in [(old, "old"), (timezone.now(), "new")]:
        CredentialEvent.objects.create(
            tenant=tenant, kind=CredentialEvent.APIKEY_REVOKED, subject=subject, at=at
        )
    prune_events()
    kept = set(CredentialEvent.objects.filter(tenant=tenant).values_list("subject", flat=True))
    assert "new" in kept and "old" not in kept


def test_a_passkey_removed_after_the_backup_stays_removed(data_tenant, sites):
    """C4/S12: a passkey its owner removed (lost phone) after the backup point does not
    come back with a restore onto live."""
    import hashlib

    from django_otp_webauthn.models import WebAuthnCredential

    tenant = data_tenant.tenant
    users = people(tenant)
    with tenant_context(tenant):
        lost, kept = (
            WebAuthnCredential.objects.create(
                user=users["quin"],
                name=name,
                credential_id=name.encode(),
                credential_id_sha256=hashlib.sha256(name.encode()).hexdigest(),
                public_key=b"not used here",
                confirmed=True,
            )
            for name in ("lost-phone", "laptop")
        )
    forget_tenant_database(tenant)
    backup = service.run_backup(service.tenant_target(tenant), sites=sites)
    quin = signed_in(tenant, "quin")
    verified_by(quin, tenant, kept)  # the ceremony itself is a browser test's
    assert (
        quin.post(f"/accounts/passkeys/{lost.pk}/remove/", {"confirmed": "yes"})["Location"]
        == "/accounts/passkeys/"
    )
    assert "lost-phone" not in quin.get("/accounts/passkeys/").content.decode()

    run = restore.request_restore(backup, Restore.LIVE, "operator (test)")
    restore.perform(run, sites=sites)
    with tenant_context(tenant):
        assert list(WebAuthnCredential.objects.values_list("name", flat=True)) == ["laptop"]
