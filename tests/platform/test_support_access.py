"""C14: support staff enter a customer's workspace only with their own identity, for the
ticket at hand, within a grant the customer's policy allows, audited on both sides.

Personas: a support staff member (and one of each other role), the tenant's owner (its
administrator), a member, and a second tenant (bravo)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from oxygis.access.actors import system
from oxygis.audit.models import AuditEvent
from oxygis.platform.models import AccessGrant, StaffMember, SupportHandoff, SupportPolicy, Ticket
from oxygis.tenancy.context import CATALOG, using_database
from oxygis.tenancy.databases import tenant_context
from tests.fixtures import link_in, mails_to

from .staffing import ask_access, enter, handoff_path, make_staff, open_ticket_as_owner


@pytest.fixture
def policy(alpha):
    """Set alpha's staff-access policy for one test; back to the default after."""

    def set_to(value):
        SupportPolicy.objects.update_or_create(
            tenant=alpha.tenant, defaults={"staff_access": value}
        )

    yield set_to
    SupportPolicy.objects.filter(tenant=alpha.tenant).delete()


def tenant_events(tenant, action, since_seq=0):
    with tenant_context(tenant):
        return list(AuditEvent.objects.filter(action=action, seq__gt=since_seq).order_by("seq"))


def head_seq(tenant) -> int:
    with tenant_context(tenant):
        last = AuditEvent.objects.order_by("-seq").first()
        return last.seq if last else 0


def approve_in_instance(owner, grant):
    response = owner.post(f"/settings/support/grants/{grant.pk}/approve/")
    assert response.status_code == 302
    grant.refresh_from_db()
    assert grant.state == AccessGrant.ACTIVE


def test_the_journey_ticket_approval_read_only_session_audit_and_revocation(alpha, world):
    """C14, C17: the owner asks for help; support asks read-only access for an hour; the
    owner approves from the e-mailed link; support enters through the hand-off as
    "Support: <name>", reads orders but cannot change anything (pages and API); every
    user of the tenant sees the banner; each request is in the tenant's audit log with
    the staff member, ticket and grant; revoking ends the session at the next request."""
    start = head_seq(alpha.tenant)
    support = make_staff(StaffMember.SUPPORT, name="Ana Support")
    owner, ticket = open_ticket_as_owner(alpha)
    staff_mail = mails_to(support.member.user.email)
    assert staff_mail and f"#{ticket.pk}" in str(staff_mail[-1]["Subject"])

    console, grant = ask_access(support, ticket, scope="read", minutes=60)
    assert grant.state == AccessGrant.REQUESTED  # the default policy: approval first
    # Not live: the hand-off is refused.
    refused = console.post(f"/grants/{grant.pk}/open/")
    assert refused.status_code == 302 and refused["Location"] == f"/tickets/{ticket.pk}/"
    assert not SupportHandoff.objects.filter(grant=grant).exists()

    # The owner's e-mail carries a signed decision link; the owner approves there.
    with tenant_context(alpha.tenant):
        owner_email = world.user("admin").email
    decision = link_in(mails_to(owner_email)[-1], "/support/grant/")
    path = decision.split(alpha.host, 1)[1].lstrip(":0123456789")
    anonymous = alpha.client()
    page = anonymous.get(path)
    assert page.status_code == 200 and "Ana Support" in page.content.decode()
    assert anonymous.post(path, {"decision": "approve"}).status_code == 200
    grant.refresh_from_db()
    assert grant.state == AccessGrant.ACTIVE and "e-mail link" in grant.decided_by
    assert timedelta(minutes=59) < grant.expires_at - timezone.now() <= timedelta(minutes=60)

    session = enter(console, grant, alpha)
    home = session.get("/")
    assert home.status_code == 200
    assert "Support: Ana Support" in home.content.decode()
    order_pk = world.orders["sam"][0]
    assert session.get(f"/sales/orders/{order_pk}/").status_code == 200
    assert session.get("/api/v1/orders").status_code == 200

    # Read-only: the access layer refuses writes, whatever the page or API offers.
    contact = world.contacts[0]
    edit = session.post(
        f"/sales/contacts/{contact.pk}/", {"kind": contact.kind, "name": "Changed by support"}
    )
    assert edit.status_code == 403
    api_write = session.post(
        "/api/v1/contacts",
        {"kind": contact.kind, "name": "New by support"},
        content_type="application/json",
    )
    assert api_write.status_code == 403
    with tenant_context(alpha.tenant):
        from oxygis.sales.models import Contact

        with system(reason="test check"):
            assert Contact.objects.get(pk=contact.pk).name == contact.name
            assert not Contact.objects.filter(name="New by support").exists()

    # Every user of the tenant sees who is in, until when, for which ticket.
    member = alpha.client()
    member.sign_in(alpha.member_username, alpha.member_password)
    banner = member.get("/").content.decode()
    assert "Support (Ana Support) is connected until" in banner and f"ticket #{ticket.pk}" in banner

    # The tenant's audit log: each request under the grant, with staff, ticket and grant.
    requests = tenant_events(alpha.tenant, "support.request", start)
    assert len(requests) >= 5
    assert all(e.actor == "Support: Ana Support" for e in requests)
    assert all(
        e.details["ticket"] == ticket.pk and e.details["grant"] == grant.pk for e in requests
    )
    assert {e.details["status"] for e in requests} >= {200, 403}
    for action in ("support.ticket_opened", "support.grant_requested", "support.grant_approved"):
        assert tenant_events(alpha.tenant, action, start), action
    audit_page = owner.get("/settings/audit/").content.decode()
    assert "Support: Ana Support" in audit_page and f"ticket: {ticket.pk}" in audit_page
    # ... and the platform's, the same requests, with the tenant named.
    with using_database(CATALOG):
        platform = AuditEvent.objects.filter(action="support.request", details__grant=grant.pk)
        assert platform.count() == len(requests)

    # The owner revokes: the very next request of the session is refused, and it is gone.
    assert owner.post(f"/settings/support/grants/{grant.pk}/revoke/").status_code == 302
    ended = session.get("/sales/orders/")
    assert ended.status_code == 403 and "Support session ended" in ended.content.decode()
    again = session.get("/sales/orders/")
    assert again.status_code == 302 and "/accounts/login/" in again["Location"]
    assert "Support (Ana Support)" not in member.get("/").content.decode()
    assert tenant_events(alpha.tenant, "support.grant_revoked", start)


def test_a_grant_ends_on_its_own_mid_session(alpha, world, policy):
    """C14: at expiry the session stops at its next request; the worker's job writes the
    expiry in both logs."""
    from oxygis.platform.grants import expire_due

    policy(SupportPolicy.ALLOWED)
    support = make_staff(StaffMember.SUPPORT)
    _, ticket = open_ticket_as_owner(alpha, subject="Expiry")
    console, grant = ask_access(support, ticket, minutes=15)
    assert grant.state == AccessGrant.ACTIVE  # allowed by policy: live at once
    session = enter(console, grant, alpha)
    assert session.get("/sales/orders/").status_code == 200
    AccessGrant.objects.filter(pk=grant.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert session.get("/sales/orders/").status_code == 403
    start = head_seq(alpha.tenant)
    assert expire_due() >= 1
    grant.refresh_from_db()
    assert grant.state == AccessGrant.EXPIRED
    assert tenant_events(alpha.tenant, "support.grant_expired", start)


def test_the_hand_off_link_works_once_within_a_minute_on_its_own_tenant(alpha, bravo, policy):
    """C14: a replayed hand-off link, one older than 60 seconds, or one used on another
    tenant's host opens nothing (and each refusal is in the tenant's log)."""
    policy(SupportPolicy.ALLOWED)
    support = make_staff(StaffMember.SUPPORT)
    _, ticket = open_ticket_as_owner(alpha, subject="Hand-off")
    console, grant = ask_access(support, ticket)

    def fresh_link():
        return handoff_path(console, grant, alpha)

    from tests.fixtures import HttpsClient

    path = fresh_link()
    # Another tenant's host: refused, and the link is not spent by it.
    other = HttpsClient(bravo.host).get(path)
    assert other.status_code == 403
    first = HttpsClient(alpha.host)
    assert first.get(path).status_code == 302
    replay = HttpsClient(alpha.host).get(path)
    assert replay.status_code == 403
    assert replay.wsgi_request.session.get("oxygis_support_grant") is None

    late = fresh_link()
    SupportHandoff.objects.filter(grant=grant, used_at__isnull=True).update(
        created_at=timezone.now() - timedelta(seconds=61)
    )
    assert HttpsClient(alpha.host).get(late).status_code == 403
    forged = path[:-6] + "AAAAAA/"
    assert HttpsClient(alpha.host).get(forged).status_code == 403
    refusals = tenant_events(alpha.tenant, "support.session_refused")
    reasons = {e.details["why"] for e in refusals}
    assert {"link already used", "expired link", "invalid link"} <= reasons
    with tenant_context(bravo.tenant):
        assert AuditEvent.objects.filter(
            action="support.session_refused", details__why="link of another workspace"
        ).exists()


def test_policy_never_refuses_and_a_denied_grant_opens_nothing(alpha, policy):
    """C14: a tenant that never allows staff access gets no grant at all; a grant its
    administrator denied cannot be opened."""
    support = make_staff(StaffMember.SUPPORT)
    owner, ticket = open_ticket_as_owner(alpha, subject="Policy")
    policy(SupportPolicy.NEVER)
    console = support.console()
    refused = console.post(
        f"/tickets/{ticket.pk}/",
        {"form": "grant", "scope": "read", "minutes": 60, "reason": "look"},
        follow=True,
    )
    assert "does not allow staff access" in refused.content.decode()
    assert not AccessGrant.objects.filter(ticket=ticket).exists()

    policy(SupportPolicy.APPROVAL)
    console, grant = ask_access(support, ticket)
    assert owner.post(f"/settings/support/grants/{grant.pk}/deny/").status_code == 302
    grant.refresh_from_db()
    assert grant.state == AccessGrant.DENIED
    console.post(f"/grants/{grant.pk}/open/")
    assert not SupportHandoff.objects.filter(grant=grant).exists()
    # Deciding twice is refused with a message, not an error.
    again = owner.post(f"/settings/support/grants/{grant.pk}/approve/", follow=True)
    assert "already decided" in again.content.decode()


def test_the_owner_sets_the_policy_and_a_member_cannot(alpha):
    """C14, S13: the staff-access policy is the tenant administrator's; a member without
    the right is refused the support pages."""
    owner = alpha.client()
    owner.sign_in(alpha.owner_username, alpha.owner_password)
    try:
        assert owner.post("/settings/support/", {"staff_access": "never"}).status_code == 302
        assert SupportPolicy.for_tenant(alpha.tenant) == SupportPolicy.NEVER
        page = owner.get("/settings/support/").content.decode()
        assert 'value="never" checked' in page or 'value="never"' in page
    finally:
        SupportPolicy.objects.filter(tenant=alpha.tenant).delete()
    member = alpha.client()
    member.sign_in(alpha.member_username, alpha.member_password)
    for path in ("/settings/support/", "/settings/support/new/"):
        assert member.get(path).status_code == 403


def test_read_write_grant_changes_data_but_never_the_customers_accounts(alpha, world, policy):
    """C14, C11, S12: under a read-write grant support may fix business data; users,
    roles, security settings, keys, 2FA and backups stay out of reach, and no page a
    support session reaches holds a password hash, TOTP secret or recovery code."""
    from django.contrib.auth import get_user_model
    from django_otp.plugins.otp_totp.models import TOTPDevice

    policy(SupportPolicy.ALLOWED)
    support = make_staff(StaffMember.SUPPORT, name="Rui Fixer")
    _, ticket = open_ticket_as_owner(alpha, subject="Fix a contact")
    console, grant = ask_access(support, ticket, scope="write")
    session = enter(console, grant, alpha)
    contact = world.contacts[1]
    fixed = session.post(
        f"/sales/contacts/{contact.pk}/",
        {"kind": contact.kind, "name": "Fixed by support", "email": contact.email},
    )
    assert fixed.status_code == 302
    with tenant_context(alpha.tenant), system(reason="test: the shared world back as it was"):
        from oxygis.sales.models import Contact

        stored = Contact.objects.get(pk=contact.pk)
        assert stored.name == "Fixed by support"
        stored.name = contact.name
        stored.save()
    for path in (
        "/settings/users/",
        "/settings/roles/",
        "/settings/policy/",
        "/settings/audit/",
        "/settings/backups/",
        "/settings/support/",
        "/accounts/security/",
        "/accounts/2fa/setup/",
        "/accounts/api-keys/",
        "/accounts/password/",
    ):
        response = session.get(path)
        assert response.status_code == 403, path
        assert "Not available to support staff" in response.content.decode()
    from django_otp.plugins.otp_static.models import StaticDevice, StaticToken

    with tenant_context(alpha.tenant):
        owner = get_user_model().objects.get(username=alpha.owner_username)
        device = StaticDevice.objects.create(user=owner, name="backup", confirmed=True)
        StaticToken.objects.create(device=device, token="zq7recovery")
        TOTPDevice.objects.create(user=owner, name="phone", confirmed=False)
        hashes = list(get_user_model().objects.values_list("password", flat=True))
        secrets = [d.key for d in TOTPDevice.objects.all()]
        secrets += list(StaticToken.objects.values_list("token", flat=True))
    pages = "".join(
        session.get(p).content.decode()
        for p in ("/", "/sales/orders/", "/sales/contacts/", "/api/v1/orders")
    )
    try:
        for secret in [*hashes, *secrets]:
            assert secret[-20:] not in pages
    finally:
        with tenant_context(alpha.tenant):
            device.delete()
            TOTPDevice.objects.filter(user=owner, confirmed=False).delete()
    with tenant_context(alpha.tenant):
        change = AuditEvent.objects.filter(
            action="support.request", details__grant=grant.pk, details__method="POST"
        )
        assert change.filter(target__contains=f"/sales/contacts/{contact.pk}/").exists()


def test_closing_the_ticket_ends_its_grants_and_sessions(alpha, world, policy):
    """C14: a grant lasts no longer than its ticket."""
    policy(SupportPolicy.ALLOWED)
    support = make_staff(StaffMember.SUPPORT)
    owner, ticket = open_ticket_as_owner(alpha, subject="Closing")
    console, grant = ask_access(support, ticket)
    session = enter(console, grant, alpha)
    assert session.get("/sales/orders/").status_code == 200
    answer = console.post(f"/tickets/{ticket.pk}/", {"form": "reply", "body": "Fixed, thanks."})
    assert answer.status_code == 302
    page = owner.get(f"/settings/support/{ticket.pk}/").content.decode()
    assert "Fixed, thanks." in page
    assert owner.post(f"/settings/support/{ticket.pk}/", {"body": "Confirmed."}).status_code == 302
    assert owner.post(f"/settings/support/{ticket.pk}/close/").status_code == 302
    grant.refresh_from_db()
    assert grant.state == AccessGrant.ENDED
    assert session.get("/sales/orders/").status_code == 403
    # A closed ticket takes no more answers nor grants.
    assert console.post(f"/tickets/{ticket.pk}/close/").status_code == 302
    assert Ticket.objects.get(pk=ticket.pk).is_closed


def test_the_support_session_can_leave(alpha, world, policy):
    """C14: support ends their session themselves."""
    policy(SupportPolicy.ALLOWED)
    support = make_staff(StaffMember.SUPPORT)
    _, ticket = open_ticket_as_owner(alpha, subject="Leaving")
    console, grant = ask_access(support, ticket)
    session = enter(console, grant, alpha)
    start = head_seq(alpha.tenant)
    assert session.post("/support/leave/").status_code == 200
    assert session.get("/sales/orders/").status_code == 302
    assert tenant_events(alpha.tenant, "support.session_ended", start)
    # A tenant user posting there is just sent home: their session is not touched.
    member = alpha.client()
    member.sign_in(alpha.member_username, alpha.member_password)
    assert member.post("/support/leave/")["Location"] == "/"
    assert "Sign out" in member.get("/").content.decode()


def test_a_security_report_is_urgent_and_acknowledged_by_e_mail(alpha, world):
    """S10: a security report is top priority, the security staff are told, and the
    reporter gets an acknowledgement at once."""
    security = make_staff(StaffMember.SECURITY)
    _, ticket = open_ticket_as_owner(alpha, subject="XSS in contacts", category="security")
    assert ticket.priority == Ticket.URGENT
    with tenant_context(alpha.tenant):
        owner_email = world.user("admin").email
    assert any("security report" in str(m["Subject"]) for m in mails_to(owner_email))
    assert any(
        "[Security report]" in str(m["Subject"]) for m in mails_to(security.member.user.email)
    )
    listing = security.console().get("/tickets/").content.decode()
    assert "XSS in contacts" in listing and "security" in listing


def test_the_access_log_names_the_staff_member_and_grant_never_the_hand_off(
    alpha, world, policy, tmp_path, monkeypatch
):
    """C17, C14: each line of a support session names the staff identity, its staff id,
    grant and ticket; the hand-off link's token is never written."""
    import json

    from django.conf import settings

    from oxygis.audit import accesslog

    monkeypatch.setattr(settings, "ACCESS_LOG_FILE", str(tmp_path / "access.log"))
    accesslog.reset_logger()
    try:
        policy(SupportPolicy.ALLOWED)
        support = make_staff(StaffMember.SUPPORT, name="Lea Logs")
        _, ticket = open_ticket_as_owner(alpha, subject="Logs")
        console, grant = ask_access(support, ticket)
        session = enter(console, grant, alpha)
        session.get("/sales/orders/")
        lines = [
            json.loads(text)
            for _, path in accesslog.log_files(tmp_path / "access.log")
            for text in path.read_text().splitlines()
        ]
        support_lines = [line for line in lines if line.get("grant_id") == grant.pk]
        assert support_lines and support_lines[-1]["user"] == "Support: Lea Logs"
        assert support_lines[-1]["staff_id"] == support.member.pk
        assert support_lines[-1]["ticket_id"] == ticket.pk
        entered = [line for line in lines if (line["path"] or "").startswith("/support/enter/")]
        assert entered and all(line["path"] == "/support/enter/[redacted]/" for line in entered)
    finally:
        accesslog.reset_logger()


def test_a_hand_off_link_raced_by_many_requests_opens_one_session(alpha, policy):
    """C14: eight requests with the same link at the same moment: exactly one session
    opens (the link is spent by one conditional update), the others are refused."""
    import threading

    from django.db import connections

    from oxygis.platform.grants import HandoffRefused, spend_handoff

    policy(SupportPolicy.ALLOWED)
    support = make_staff(StaffMember.SUPPORT)
    _, ticket = open_ticket_as_owner(alpha, subject="Race")
    console, grant = ask_access(support, ticket)
    token = handoff_path(console, grant, alpha).split("/")[-2]
    start, outcomes = threading.Barrier(8), []

    def use():
        start.wait()
        try:
            outcomes.append(spend_handoff(token, alpha.tenant).pk)
        except HandoffRefused as exc:
            outcomes.append(str(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count(grant.pk) == 1, outcomes
    assert outcomes.count("link already used") == 7, outcomes
