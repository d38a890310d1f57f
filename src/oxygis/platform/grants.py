"""Access grants (C14): how a support person enters a tenant, and only that way.

* A grant is asked for on a ticket by a staff member of the support role: a scope (read
  or read-write), a duration (at most 4 hours) and a reason.
* The tenant's policy decides: staff access allowed (the grant starts at once), allowed
  after a tenant administrator approves it (in the instance or from the e-mail's signed
  link), or never (refused).
* A live grant lets its staff member open the tenant's host through a one-time,
  60-second hand-off link; the tenant's middleware turns it into a session whose actor
  is a ``StaffActor`` ("Support: <name>"), the grant re-read on every request.
* The grant ends at its expiry, when the ticket closes, when a tenant administrator
  revokes it, or when the staff member is disabled; its sessions stop at the next
  request, whatever they hold.

Every step is recorded in the tenant's audit log and in the platform's.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core import signing
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from oxygis.access.actors import StaffActor
from oxygis.audit.events import Named, record
from oxygis.core.mail import send_templated
from oxygis.tenancy.context import CATALOG, using_database
from oxygis.tenancy.credentials import signing_salt
from oxygis.tenancy.databases import tenant_context

from .links import console_link, tenant_link
from .models import AccessGrant, StaffMember, SupportHandoff, SupportPolicy, Ticket
from .staff import StaffError, require

log = logging.getLogger("oxygis.platform")

HANDOFF_SALT = "oxygis.platform.grants.handoff"
DECISION_PURPOSE = "oxygis.platform.grants.decision"
DECISION_MAX_AGE = int(AccessGrant.REQUEST_VALID.total_seconds())


def send_quietly(to: str, subject: str, template: str, context: dict, **options) -> None:
    """E-mail a notice; the step it tells of is stored whatever the mail does (the
    tenant's support page and the console show it), and a failure is logged."""
    try:
        send_templated(to, subject, template, context, **options)
    except Exception as exc:
        log.error("could not e-mail %s (%s): %s", to, subject, exc)


def staff_label(member: StaffMember) -> str:
    return f"Support: {member.name}"


def _grant_details(grant: AccessGrant) -> dict:
    return {
        "ticket": grant.ticket_id,
        "grant": grant.pk,
        "scope": grant.scope,
        "minutes": grant.minutes,
        "staff": grant.staff.name,
    }


def sides(by, tenant) -> tuple[object, object]:
    """How the tenant's log and the platform's name ``by``: a tenant user, a staff
    member's catalog user, a StaffActor, a Named actor, or None (the platform itself).
    A user is named by id only in its own database's log (an id means someone else in
    the other)."""
    if by is None:
        return Named("Oxygis (automatic)"), Named("Oxygis (automatic)")
    db = getattr(getattr(by, "_state", None), "db", None)
    if db is None:  # a StaffActor, a Named actor, an Operator: one name everywhere
        return by, by
    if db == CATALOG:
        member = StaffMember.objects.filter(user_id=by.pk).first()
        return Named(staff_label(member) if member else by.get_username()), by
    return by, Named(f"{by.get_username()} at {tenant.slug}")


def log_step(action: str, tenant, *, by, target: str, **details) -> None:
    """Record one step in the tenant's log (where its administrator reads it) and in the
    platform's, each naming ``by`` its own way (see ``sides``)."""
    tenant_side, platform_side = sides(by, tenant)
    with tenant_context(tenant):
        record(action, actor=tenant_side, target=target, **details)
    with using_database(CATALOG):
        record(action, actor=platform_side, target=target, tenant=tenant.slug, **details)


def _log_grant(action: str, grant: AccessGrant, *, by, **extra) -> None:
    log_step(
        action,
        grant.tenant,
        by=by,
        target=f"ticket #{grant.ticket_id}",
        **_grant_details(grant),
        **extra,
    )


# --- asking -----------------------------------------------------------------------------
def request_grant(member: StaffMember, ticket: Ticket, *, scope: str, minutes: int, reason: str):
    require(member, "grants.request")
    if ticket.is_closed:
        raise StaffError(f"ticket #{ticket.pk} is closed")
    if ticket.tenant is None:
        raise StaffError(_("this report came from outside: there is no workspace to enter"))
    if scope not in (AccessGrant.READ, AccessGrant.WRITE):
        raise StaffError(_("the scope is read or write"))
    if not 5 <= int(minutes) <= AccessGrant.MAX_MINUTES:
        raise StaffError(_("a grant lasts from 5 minutes to 4 hours"))
    reason = " ".join((reason or "").split())
    if not reason:
        raise StaffError(_("say why you need access (the customer reads it)"))
    policy = SupportPolicy.for_tenant(ticket.tenant)
    if policy == SupportPolicy.NEVER:
        raise StaffError(f"{ticket.tenant.name} does not allow staff access to its workspace")
    with transaction.atomic(using=CATALOG):
        grant = AccessGrant.objects.create(
            ticket=ticket,
            tenant=ticket.tenant,
            staff=member,
            scope=scope,
            minutes=int(minutes),
            reason=reason[:300],
        )
    _log_grant("support.grant_requested", grant, by=member.user, reason=grant.reason)
    if policy == SupportPolicy.ALLOWED:
        _activate(grant, decided_by="the workspace's policy (staff access allowed)")
        _log_grant("support.grant_approved", grant, by=None, policy=policy)
    else:
        _ask_administrators(grant)
    return grant


def tenant_administrators(tenant) -> list:
    """Active users of ``tenant`` who decide on staff access."""
    with tenant_context(tenant):
        people = get_user_model()._default_manager.filter(is_active=True).exclude(email="")
        return [
            person
            for person in people.filter(
                Q(is_superuser=True)
                | Q(groups__permissions__codename="manage_support")
                | Q(user_permissions__codename="manage_support")
            ).distinct()
        ]


def decision_token(grant: AccessGrant, user) -> str:
    with tenant_context(grant.tenant):
        return signing.dumps(
            {"g": grant.pk, "u": user.pk}, salt=signing_salt(DECISION_PURPOSE), compress=True
        )


def read_decision_token(token: str) -> tuple[int, int] | None:
    """(grant id, tenant user id) from an e-mailed decision link, or None. Runs inside
    the tenant's context: the salt is the tenant's, a link of another opens nothing."""
    try:
        data = signing.loads(token, salt=signing_salt(DECISION_PURPOSE), max_age=DECISION_MAX_AGE)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or not {"g", "u"} <= data.keys():
        return None
    return int(data["g"]), int(data["u"])


def _ask_administrators(grant: AccessGrant) -> None:
    for admin in tenant_administrators(grant.tenant):
        link = tenant_link(
            grant.tenant.slug, "support-grant-email", token=decision_token(grant, admin)
        )
        send_quietly(
            admin.email,
            f"Oxygis support asks to access {grant.tenant.name} (ticket #{grant.ticket_id})",
            "platform/email/grant_request",
            {"grant": grant, "link": link, "tenant": grant.tenant, "admin": admin},
        )


# --- deciding ---------------------------------------------------------------------------
def _activate(grant: AccessGrant, *, decided_by: str) -> bool:
    now = timezone.now()
    done = AccessGrant.objects.filter(
        pk=grant.pk, state=AccessGrant.REQUESTED, requested_at__gt=now - AccessGrant.REQUEST_VALID
    ).update(
        state=AccessGrant.ACTIVE,
        decided_at=now,
        decided_by=decided_by[:200],
        expires_at=now + timedelta(minutes=grant.minutes),
    )
    grant.refresh_from_db()
    return bool(done)


def approve(grant: AccessGrant, *, by, via: str = "instance") -> None:
    """A tenant administrator (``by``, a tenant user) lets the grant start now."""
    if not _activate(grant, decided_by=f"{by.get_username()} ({via})"):
        raise StaffError(_("this request was already decided, or it lapsed"))
    _log_grant("support.grant_approved", grant, by=by, via=via)
    _tell_staff(grant, "approved")


def deny(grant: AccessGrant, *, by, via: str = "instance") -> None:
    done = AccessGrant.objects.filter(pk=grant.pk, state=AccessGrant.REQUESTED).update(
        state=AccessGrant.DENIED, decided_at=timezone.now(), decided_by=by.get_username()[:200]
    )
    if not done:
        raise StaffError(_("this request was already decided"))
    grant.refresh_from_db()
    _log_grant("support.grant_denied", grant, by=by, via=via)
    _tell_staff(grant, "denied")


def _end(grant: AccessGrant, state: str, *, by_label: str) -> bool:
    done = AccessGrant.objects.filter(
        pk=grant.pk, state__in=(AccessGrant.REQUESTED, AccessGrant.ACTIVE)
    ).update(state=state, ended_at=timezone.now(), ended_by=by_label[:200])
    grant.refresh_from_db()
    return bool(done)


def revoke(grant: AccessGrant, *, by) -> None:
    """A tenant administrator ends a grant now: its sessions stop at their next request."""
    if not _end(grant, AccessGrant.REVOKED, by_label=by.get_username()):
        raise StaffError(_("this grant has already ended"))
    _log_grant("support.grant_revoked", grant, by=by)
    _tell_staff(grant, "revoked")


def end_grants_of_ticket(ticket: Ticket, *, by) -> int:
    ended = 0
    for grant in ticket.grants.filter(state__in=(AccessGrant.REQUESTED, AccessGrant.ACTIVE)):
        if _end(grant, AccessGrant.ENDED, by_label=by.get_username()):
            _log_grant("support.grant_ended", grant, by=by)
            ended += 1
    return ended


def end_grants_of_staff(member: StaffMember, *, by) -> int:
    ended = 0
    for grant in member.grants.filter(state__in=(AccessGrant.REQUESTED, AccessGrant.ACTIVE)):
        if _end(grant, AccessGrant.REVOKED, by_label=by.get_username()):
            _log_grant("support.grant_revoked", grant, by=by, why="staff member disabled")
            ended += 1
    return ended


def expire_due(now=None) -> int:
    """The worker's job: mark ended what the clock ended (every request already refuses
    an expired grant; this writes it down, in both logs, and lapses old requests)."""
    now = now or timezone.now()
    expired = 0
    due = AccessGrant.objects.select_related("staff", "tenant").filter(
        Q(state=AccessGrant.ACTIVE, expires_at__lte=now)
        | Q(state=AccessGrant.REQUESTED, requested_at__lte=now - AccessGrant.REQUEST_VALID)
    )
    for grant in due:
        if _end(grant, AccessGrant.EXPIRED, by_label="the clock"):
            _log_grant("support.grant_expired", grant, by=None)
            expired += 1
    return expired


def _tell_staff(grant: AccessGrant, what: str) -> None:
    with using_database(CATALOG):
        email = grant.staff.user.email
    if email:
        send_quietly(
            email,
            f"Access to {grant.tenant.name} {what} (ticket #{grant.ticket_id})",
            "platform/email/grant_decided",
            {
                "grant": grant,
                "what": what,
                "link": console_link("console-ticket", ticket_id=grant.ticket_id),
            },
        )


# --- entering ---------------------------------------------------------------------------
def live_grant(grant_id, tenant, now=None) -> AccessGrant | None:
    """The grant if it lets its staff member in ``tenant`` right now, else None: active,
    not expired, its ticket open, its staff member enabled, and of this very tenant."""
    now = now or timezone.now()
    grant = (
        AccessGrant.objects.select_related("staff", "ticket")
        .filter(pk=grant_id, tenant_id=tenant.pk, state=AccessGrant.ACTIVE, expires_at__gt=now)
        .first()
    )
    if grant is None or grant.ticket.is_closed:
        return None
    with using_database(CATALOG):
        if not grant.staff.user.is_active:
            return None
    return grant


def actor_for(grant: AccessGrant) -> StaffActor:
    return StaffActor(
        staff_id=grant.staff_id,
        name=grant.staff.name,
        grant_id=grant.pk,
        ticket_id=grant.ticket_id,
        scope=grant.scope,
    )


def _digest(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


def handoff_url(grant: AccessGrant, member: StaffMember) -> str:
    """A one-time link, valid 60 seconds, that opens a support session on the tenant's
    host for ``member``'s live grant. Only the grant's own staff member gets one."""
    require(member, "grants.request")
    if grant.staff_id != member.pk:
        raise StaffError(_("this grant is another staff member's"))
    if live_grant(grant.pk, grant.tenant) is None:
        raise StaffError(_("this grant is not active"))
    nonce = secrets.token_urlsafe(32)
    handoff = SupportHandoff.objects.create(grant=grant, nonce_hash=_digest(nonce))
    token = signing.dumps({"h": handoff.pk, "n": nonce}, salt=HANDOFF_SALT)
    return tenant_link(grant.tenant.slug, "support-enter", token=token)


class HandoffRefused(Exception):
    """A hand-off link that opens nothing: its one line says why (for the audit log)."""


def spend_handoff(token: str, tenant) -> AccessGrant:
    """The grant a hand-off link opens on ``tenant``'s host, spending the link."""
    try:
        data = signing.loads(token, salt=HANDOFF_SALT, max_age=SupportHandoff.VALID)
    except signing.SignatureExpired:
        raise HandoffRefused("expired link") from None
    except signing.BadSignature:
        raise HandoffRefused("invalid link") from None
    if not isinstance(data, dict) or not {"h", "n"} <= data.keys():
        raise HandoffRefused("invalid link")
    now = timezone.now()
    handoff = SupportHandoff.objects.select_related("grant").filter(pk=data["h"]).first()
    if handoff is None or not secrets.compare_digest(handoff.nonce_hash, _digest(str(data["n"]))):
        raise HandoffRefused("invalid link")
    if handoff.grant.tenant_id != tenant.pk:
        raise HandoffRefused("link of another workspace")
    if handoff.used_at is not None:
        raise HandoffRefused("link already used")
    if handoff.created_at <= now - SupportHandoff.VALID:
        raise HandoffRefused("expired link")
    # Spent by one request only, whatever races: the row changes once.
    spent = SupportHandoff.objects.filter(pk=handoff.pk, used_at__isnull=True).update(used_at=now)
    if not spent:
        raise HandoffRefused("link already used")
    grant = live_grant(handoff.grant_id, tenant, now)
    if grant is None:
        raise HandoffRefused("grant not active")
    AccessGrant.objects.filter(pk=grant.pk, entered_at__isnull=True).update(entered_at=now)
    return grant


def banner_grants(tenant, now=None) -> list[AccessGrant]:
    """Live grants of ``tenant``, for the banner every one of its users sees."""
    now = now or timezone.now()
    return list(
        AccessGrant.objects.select_related("staff")
        .filter(tenant_id=tenant.pk, state=AccessGrant.ACTIVE, expires_at__gt=now)
        .order_by("expires_at")
    )
