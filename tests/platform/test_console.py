"""C14, C8, S10: the platform console: staff only, 2FA before anything, short sessions,
each page behind its role's right, every action in the platform's audit log.

Personas: a staff member of each role (support, operations, security, admin), a second
admin (for the two-person drop), a catalog user who is not staff, and a tenant owner."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth import get_user_model

from oxygis.audit.models import AuditEvent
from oxygis.backups import alerts, service
from oxygis.backups.models import Alert, Restore
from oxygis.platform.models import StaffMember, TenantDropRequest
from oxygis.tenancy.context import CATALOG, using_database
from oxygis.tenancy.models import Tenant
from tests.backups.conftest import file_site_urls
from tests.fixtures import HttpsClient, link_in, mails_to, secret_on, totp, unique_slug

from .staffing import CONSOLE, STAFF_PASSWORD, make_staff


def platform_events(action, **details):
    with using_database(CATALOG):
        events = AuditEvent.objects.filter(action=action)
        for key, value in details.items():
            events = events.filter(**{f"details__{key}": value})
        return list(events.order_by("seq"))


def platform_targets(action) -> set[str]:
    with using_database(CATALOG):
        return set(AuditEvent.objects.filter(action=action).values_list("target", flat=True))


def test_no_console_page_before_two_factor_enrolment():
    """C14, S12: a staff member signed in with the password alone reaches nothing but
    enrolment; once enrolled (with recovery codes shown once), the console opens."""
    newcomer = make_staff(StaffMember.ADMIN, enrolled=False)
    client = newcomer.console()
    for path in ("/", "/tenants/", "/tickets/", "/audit/", "/staff/", "/accounts/security/"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith("/accounts/2fa/setup/"), path
    setup = client.get("/accounts/2fa/setup/")
    assert setup.status_code == 200
    secret = secret_on(setup.content.decode())
    assert client.get("/accounts/2fa/qr.svg").status_code == 200
    enrolled = client.post("/accounts/2fa/setup/", {"code": totp(secret)})
    assert enrolled.status_code == 200 and "recovery" in enrolled.content.decode().lower()
    assert client.get("/tenants/").status_code == 200


def test_only_active_staff_use_the_console():
    """C14: a catalog user without a staff row (e.g. made by Django's createsuperuser)
    is signed out at once; a disabled staff member cannot sign in."""
    with using_database(CATALOG):
        User = get_user_model()
        stray = User(username=f"stray-{unique_slug()}", email="stray@example.com")
        stray.set_password(STAFF_PASSWORD)
        stray.save()
    client = HttpsClient(CONSOLE)
    client.sign_in(stray.username, STAFF_PASSWORD)
    response = client.get("/tenants/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert client.get("/tenants/").status_code == 302

    admin = make_staff(StaffMember.ADMIN)
    leaving = make_staff(StaffMember.SUPPORT)
    console = leaving.console()
    assert console.get("/tickets/").status_code == 200
    admin_console = admin.console()
    response = admin_console.post(f"/staff/{leaving.member.pk}/disable/")
    assert response.status_code == 302
    # Their session ended at once; signing in again is refused.
    assert console.get("/tickets/").status_code == 302
    failed = HttpsClient(CONSOLE).post(
        "/accounts/login/", {"username": leaving.username, "password": STAFF_PASSWORD}
    )
    assert failed.status_code == 200
    assert leaving.username in platform_targets("staff.disabled")


def test_a_console_session_opens_nothing_on_a_tenant_host(alpha):
    """C14, C9: staff cannot use their console session on a tenant's host (host-only
    cookie, and sessions in another database), nor a tenant's session on the console."""
    staff = make_staff(StaffMember.SUPPORT)
    console = staff.console()
    cookie = console.cookies["__Host-oxygis_session"].value
    tenant = alpha.client()
    tenant.cookies["__Host-oxygis_session"] = cookie
    response = tenant.get("/sales/orders/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]

    owner = alpha.client()
    owner.sign_in(alpha.owner_username, alpha.owner_password)
    stolen = HttpsClient(CONSOLE)
    stolen.cookies["__Host-oxygis_session"] = owner.cookies["__Host-oxygis_session"].value
    response = stolen.get("/tenants/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_console_sessions_are_short():
    """C14: 15 minutes idle or 8 hours in all end a console session, whatever a tenant's
    limits are."""
    from django.conf import settings

    from oxygis.accounts.middleware import LOGIN_AT, SEEN_AT

    assert settings.STAFF_SESSION_IDLE_TIMEOUT == 15 * 60
    assert settings.STAFF_SESSION_MAX_AGE == 8 * 3600
    staff = make_staff(StaffMember.SUPPORT)
    for key, age in ((SEEN_AT, 16 * 60), (LOGIN_AT, 8 * 3600 + 60)):
        client = staff.console()
        with using_database(CATALOG):  # staff sessions live in the catalog
            session = client.session
            session[key] = int(time.time()) - age
            session.save()
        response = client.get("/tickets/")
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], key


@pytest.mark.parametrize(
    ("role", "allowed", "refused"),
    [
        (
            StaffMember.SUPPORT,
            ["/", "/tenants/", "/tickets/"],
            ["/audit/", "/staff/", "/alerts/", "/tenants/new/"],
        ),
        (
            StaffMember.OPERATIONS,
            ["/tenants/", "/tenants/new/", "/alerts/", "/tickets/"],
            ["/audit/", "/staff/"],
        ),
        (
            StaffMember.SECURITY,
            ["/audit/", "/staff/", "/alerts/", "/tickets/"],
            ["/tenants/new/"],
        ),
        (
            StaffMember.ADMIN,
            ["/audit/", "/staff/", "/alerts/", "/tenants/new/", "/tickets/"],
            [],
        ),
    ],
)
def test_each_role_has_its_own_rights(role, allowed, refused):
    """C14: support, operations, security and admin reach distinct parts of the console."""
    client = make_staff(role).console()
    for path in allowed:
        assert client.get(path).status_code == 200, (role, path)
    for path in refused:
        assert client.get(path).status_code == 403, (role, path)


def test_only_support_asks_for_access_to_a_tenant(alpha):
    """C14: the people who run the platform (operations, admin) cannot ask for access to
    a customer's data; only the support role can."""
    from .staffing import open_ticket_as_owner

    _, ticket = open_ticket_as_owner(alpha, subject="Who may ask")
    for role in (StaffMember.OPERATIONS, StaffMember.ADMIN, StaffMember.SECURITY):
        client = make_staff(role).console()
        page = client.get(f"/tickets/{ticket.pk}/").content.decode()
        assert "Ask for access" not in page
        client.post(
            f"/tickets/{ticket.pk}/",
            {"form": "grant", "scope": "read", "minutes": 60, "reason": "curious"},
        )
    assert not ticket.grants.exists()


def test_tenant_life_cycle_from_the_console(tenant_factory):
    """C14, C9: operations create, suspend, resume and re-plan a tenant through the same
    actions as the CLI; each is in the platform's audit log under their name."""
    ops = make_staff(StaffMember.OPERATIONS)
    client = ops.console()
    slug = unique_slug("con")
    made = client.post(
        "/tenants/new/", {"slug": slug, "name": "Console Corp", "plan": "trial", "admin_email": ""}
    )
    assert made.status_code == 200 and "shown once" in made.content.decode()
    tenant = Tenant.objects.get(slug=slug)
    try:
        assert tenant.state == Tenant.ACTIVE
        bad = client.post("/tenants/new/", {"slug": "www", "name": "X", "plan": "trial"})
        assert "reserved" in bad.content.decode()
        listing = client.get("/tenants/", {"q": slug}).content.decode()
        assert "Console Corp" in listing and "none" in listing  # no backup yet
        assert client.post(f"/tenants/{slug}/suspend/").status_code == 302
        assert Tenant.objects.get(pk=tenant.pk).state == Tenant.SUSPENDED
        assert client.post(f"/tenants/{slug}/resume/").status_code == 302
        assert client.post(f"/tenants/{slug}/plan/", {"plan": "paid"}).status_code == 302
        assert Tenant.objects.get(pk=tenant.pk).plan.code == "paid"
        page = client.get(f"/tenants/{slug}/").content.decode()
        assert "Console Corp" in page and "Ask to drop" not in page  # not an admin
        for action in ("tenant.created", "tenant.suspended", "tenant.resumed"):
            events = [e for e in platform_events(action) if e.target == slug]
            assert events and events[-1].actor == ops.username, action
        changed = [e for e in platform_events("tenant.plan_changed") if e.target == slug]
        assert changed[-1].details == {"before": "trial", "after": "paid"}
    finally:
        from oxygis.platform.provisioning import drop_tenant

        drop_tenant(Tenant.objects.get(pk=tenant.pk))


def test_dropping_a_tenant_takes_a_typed_confirmation_and_a_second_admin(tenant_factory):
    """C14: one admin asks (typing the address name), another approves (typing it too);
    the one who asked cannot approve; the drop is in the platform's audit log."""
    made = tenant_factory()
    slug = made.tenant.slug
    first, second = make_staff(StaffMember.ADMIN), make_staff(StaffMember.ADMIN)
    one = first.console()
    wrong = one.post(f"/tenants/{slug}/drop/", {"confirm": "nope"}, follow=True)
    assert f"address name ({slug}) to confirm" in wrong.content.decode()
    assert one.post(f"/tenants/{slug}/drop/", {"confirm": slug}).status_code == 302
    asked = TenantDropRequest.objects.get(tenant_slug=slug, state=TenantDropRequest.PENDING)
    again = one.post(f"/tenants/{slug}/drop/", {"confirm": slug}, follow=True)
    assert "already waiting" in again.content.decode()
    self_approval = one.post(f"/drops/{asked.pk}/approve/", {"confirm": slug}, follow=True)
    assert "another administrator" in self_approval.content.decode()
    assert Tenant.objects.filter(slug=slug).exists()
    two = second.console()
    assert "Drops waiting" in two.get("/").content.decode()
    assert two.post(f"/drops/{asked.pk}/approve/", {"confirm": "x"}).status_code == 302
    assert Tenant.objects.filter(slug=slug).exists()
    done = two.post(f"/drops/{asked.pk}/approve/", {"confirm": slug})
    assert done.status_code == 302 and done["Location"] == "/tenants/"
    assert not Tenant.objects.filter(slug=slug).exists()
    dropped = [e for e in platform_events("tenant.dropped") if e.target == slug]
    assert dropped[-1].actor == second.username and dropped[-1].details["approval"] == asked.pk


def test_a_drop_request_can_be_cancelled(tenant_factory):
    """C14: an admin cancels a pending drop; the tenant stays."""
    slug = tenant_factory().tenant.slug
    admin = make_staff(StaffMember.ADMIN).console()
    admin.post(f"/tenants/{slug}/drop/", {"confirm": slug})
    asked = TenantDropRequest.objects.get(tenant_slug=slug, state=TenantDropRequest.PENDING)
    assert admin.post(f"/drops/{asked.pk}/cancel/").status_code == 302
    asked.refresh_from_db()
    assert asked.state == TenantDropRequest.CANCELLED
    assert slug in platform_targets("tenant.drop_cancelled")


def test_alerts_are_acknowledged_and_resolved_from_the_console():
    """C8: the monitor's alerts are listed; operations acknowledge then resolve them,
    each step in the platform's audit log; support cannot."""
    key = f"test-alert:{unique_slug()}"
    alert = alerts.raise_alert(key, "Backup window missed for a test tenant")
    try:
        support = make_staff(StaffMember.SUPPORT).console()
        assert support.post(f"/alerts/{alert.pk}/acknowledge/").status_code == 403
        ops = make_staff(StaffMember.OPERATIONS)
        client = ops.console()
        assert "Backup window missed" in client.get("/alerts/").content.decode()
        assert client.post(f"/alerts/{alert.pk}/acknowledge/").status_code == 302
        alert.refresh_from_db()
        assert alert.acknowledged_by == ops.username and alert.resolved_at is None
        twice = client.post(f"/alerts/{alert.pk}/acknowledge/", follow=True)
        assert "already handled" in twice.content.decode()
        assert client.post(f"/alerts/{alert.pk}/resolve/").status_code == 302
        alert.refresh_from_db()
        assert alert.resolved_at is not None and alert.resolved_by == ops.username
        assert key in platform_targets("alert.acknowledged")
        assert key in platform_targets("alert.resolved")
    finally:
        Alert.objects.filter(key=key).delete()


def test_restores_from_the_console_need_a_typed_confirmation_for_live(tenant_factory, tmp_path):
    """C4, C14: operations restore a tenant's backup side by side, or onto the live
    database only after typing its name; a rollback needs it too; each is audited."""
    made = tenant_factory()
    slug = made.tenant.slug
    sites = __import__("oxygis.backups.sites", fromlist=["x"]).configured_sites(
        file_site_urls(tmp_path / "sites")
    )
    backup = service.run_backup(service.tenant_target(made.tenant), sites=sites)
    client = make_staff(StaffMember.OPERATIONS).console()
    page = client.get(f"/tenants/{slug}/").content.decode()
    assert backup.started_at.strftime("%Y-%m-%d %H:%M") in page
    try:
        url = f"/tenants/{slug}/backups/{backup.id}/restore/"
        refused = client.post(url, {"mode": "live", "confirm": "wrong"}, follow=True)
        assert f"Type {slug} to confirm" in refused.content.decode()
        assert not Restore.objects.filter(backup=backup).exists()
        assert client.post(url, {"mode": "side_by_side"}).status_code == 302
        assert client.post(url, {"mode": "live", "confirm": slug}).status_code == 302
        modes = set(Restore.objects.filter(backup=backup).values_list("mode", flat=True))
        assert modes == {Restore.SIDE_BY_SIDE, Restore.LIVE}
        assert len(platform_events("backup.restore_requested", backup=backup.short_id)) == 2
        run = Restore.objects.get(backup=backup, mode=Restore.LIVE)
        rollback = f"/tenants/{slug}/restores/{run.id}/rollback/"
        unconfirmed = client.post(rollback, {"confirm": ""}, follow=True)
        assert f"Type {slug} to confirm the rollback" in unconfirmed.content.decode()
        not_done = client.post(rollback, {"confirm": slug}, follow=True)
        assert "only a completed live restore" in not_done.content.decode()
    finally:
        # Nobody else's worker should pick these up.
        Restore.objects.filter(backup=backup).delete()


def test_admins_invite_staff_who_set_their_own_password_then_enrol(tmp_path):
    """C14, C11: a console admin creates a staff member; the new person gets a one-time
    link, sets a password under the policy (nobody else knows it), then must enrol 2FA."""
    admin = make_staff(StaffMember.ADMIN)
    client = admin.console()
    username = f"new-{unique_slug()}"
    email = f"{username}@oxygis.example"
    made = client.post(
        "/staff/", {"username": username, "name": "Nina New", "email": email, "role": "support"}
    )
    assert made.status_code == 302
    assert "Nina New" in client.get("/staff/").content.decode()
    link = link_in(mails_to(email)[-1], "/accounts/invitation/")
    path = link.split("console.localhost", 1)[1].lstrip(":0123456789")
    newcomer = HttpsClient(CONSOLE)
    form = newcomer.get(path, follow=True)
    assert form.status_code == 200
    form_path = form.redirect_chain[-1][0] if form.redirect_chain else path
    weak = newcomer.post(form_path, {"new_password1": "short", "new_password2": "short"})
    assert weak.status_code == 200
    strong = "Nina-Strong-pass-2026"
    done = newcomer.post(form_path, {"new_password1": strong, "new_password2": strong})
    assert done.status_code == 302
    fresh = HttpsClient(CONSOLE)
    fresh.sign_in(username, strong)
    assert fresh.get("/tickets/")["Location"].startswith("/accounts/2fa/setup/")
    assert username in platform_targets("staff.created")
    # The admin changes the role; a non-admin cannot.
    with using_database(CATALOG):
        user = get_user_model().objects.get(username=username)
    member = StaffMember.objects.get(user_id=user.pk)
    assert client.post(f"/staff/{member.pk}/role/", {"role": "security"}).status_code == 302
    member.refresh_from_db()
    assert member.role == StaffMember.SECURITY
    other = make_staff(StaffMember.SECURITY).console()
    assert other.post(f"/staff/{member.pk}/role/", {"role": "admin"}).status_code == 403
    assert (
        other.post("/staff/", {"username": "x", "name": "x", "email": "x@x.x"}).status_code == 403
    )
    assert client.post(f"/staff/{member.pk}/disable/").status_code == 302
    assert client.post(f"/staff/{member.pk}/enable/").status_code == 302
    assert username in platform_targets("staff.enabled")


def test_the_platform_audit_log_is_for_security_and_admins(alpha):
    """C17 (staff side): the platform's own log lists console and operator actions;
    security staff read it and export it as CSV."""
    security = make_staff(StaffMember.SECURITY)
    client = security.console()
    page = client.get("/audit/", {"action": "staff.created"})
    assert page.status_code == 200 and security.username in page.content.decode()
    csv = client.get("/audit/", {"action": "staff.created", "format": "csv"})
    assert csv.status_code == 200 and security.username in b"".join(csv.streaming_content).decode()


def test_staff_manage_their_own_sign_in_but_never_turn_off_two_factor():
    """C14, S12: on the console a staff member changes their password, ends sessions,
    renews recovery codes and resets a forgotten password like any user; turning 2FA off
    is refused (it is mandatory for staff); API keys do not exist there."""
    staff = make_staff(StaffMember.SECURITY)
    other = staff.console()
    client = staff.console()
    assert client.get("/accounts/security/").status_code == 200
    assert "API keys" not in client.get("/accounts/security/").content.decode()
    assert client.get("/accounts/api-keys/").status_code == 404
    assert client.get("/accounts/reauth/").status_code == 200
    assert client.get("/accounts/password/").status_code == 200
    assert client.get("/accounts/email/").status_code == 200
    renewed = client.post("/accounts/2fa/recovery-codes/")
    assert renewed.status_code == 200 and "recovery" in renewed.content.decode().lower()
    removed = client.post("/accounts/2fa/remove/", {"confirmed": "yes"}, follow=True)
    assert "requires two-factor authentication" in removed.content.decode()
    from django_otp.plugins.otp_totp.models import TOTPDevice

    with using_database(CATALOG):
        assert TOTPDevice.objects.filter(user_id=staff.member.user_id).exists()
        from oxygis.accounts.models import UserSession

        assert UserSession.objects.filter(user_id=staff.member.user_id).count() == 2
    assert client.post("/accounts/sessions/end-others/").status_code == 302
    assert other.get("/tickets/").status_code == 302  # the other session is gone
    with using_database(CATALOG):
        own = UserSession.objects.get(user_id=staff.member.user_id)
    assert client.post(f"/accounts/sessions/{own.pk}/end/").status_code == 302
    assert client.get("/tickets/").status_code == 302

    # A forgotten password: the reset link works on the console (and only there).
    anonymous = HttpsClient(CONSOLE)
    assert anonymous.get("/accounts/password/reset/").status_code == 200
    sent = anonymous.post("/accounts/password/reset/", {"email": staff.member.user.email})
    assert sent.status_code == 302
    assert anonymous.get("/accounts/password/reset/sent/").status_code == 200
    link = link_in(mails_to(staff.member.user.email)[-1], "/accounts/reset/")
    assert "console.localhost" in link
    path = link.split("console.localhost", 1)[1].lstrip(":0123456789")
    form = anonymous.get(path, follow=True)
    target = form.redirect_chain[-1][0] if form.redirect_chain else path
    new = "Basalt-Heron-2026!"
    done = anonymous.post(target, {"new_password1": new, "new_password2": new})
    assert done.status_code == 302
    assert anonymous.get("/accounts/reset/done/").status_code == 200
    assert client.post("/accounts/logout/").status_code == 302


def test_staff_are_locked_out_after_repeated_failures():
    """C14, S12: the console's sign-in has the tenants' lockout: five wrong passwords and
    the right one is refused too (429), and the attempt is in the platform's log."""
    staff = make_staff(StaffMember.SUPPORT)
    attacker = HttpsClient(CONSOLE, REMOTE_ADDR="203.0.113.77")
    for i in range(5):
        attacker.post("/accounts/login/", {"username": staff.username, "password": f"No-{i}-x!"})
    locked = attacker.post(
        "/accounts/login/", {"username": staff.username, "password": STAFF_PASSWORD}
    )
    assert locked.status_code == 429
    assert [e for e in platform_events("login.failure") if e.target == staff.username]


def test_the_new_tenant_page_names_the_real_address():
    """The console's hint shows the address a new workspace gets, with this platform's
    domain and port, not a placeholder."""
    from oxygis.tenancy.hosts import site_url

    page = make_staff(StaffMember.ADMIN).console().get("/tenants/new/").content.decode()
    assert site_url("SLUG") in page and "&lt;domain&gt;" not in page
