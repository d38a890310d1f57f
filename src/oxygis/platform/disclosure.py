"""Coordinated disclosure (S10): a security report's way from inbox to advisory.

Reports come two ways: a tenant administrator's security ticket (tickets.open_ticket),
or an e-mail to the address in security.txt, which the mail server pipes into
``oxygis security report``. Either way it becomes an urgent security ticket, the
reporter gets an acknowledgement at once, the security staff are told, and a
``SecurityReport`` tracks it: triaged, being fixed, fixed (in which release), advisory
published. Every step is in the platform's audit log (and the tenant's, if any); the
response times SECURITY.md promises are ``DEADLINES``, and the console shows the late.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from email import policy
from email.parser import BytesParser
from email.utils import parseaddr

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email
from django.db import transaction
from django.utils import timezone
from django.utils.html import strip_tags

from oxygis.audit.events import Named
from oxygis.core import limiter
from oxygis.core.text import header_safe
from oxygis.tenancy.context import CATALOG

from .models import SecurityReport, StaffMember, Ticket, TicketMessage
from .staff import platform_record, require

log = logging.getLogger("oxygis.platform.disclosure")

# SECURITY.md's promises, from the report's arrival (fix deadlines by severity).
TRIAGE_WITHIN = timedelta(days=1)
FIX_WITHIN = {
    SecurityReport.CRITICAL: timedelta(days=3),
    SecurityReport.HIGH: timedelta(days=7),
    SecurityReport.MEDIUM: timedelta(days=30),
    SecurityReport.LOW: timedelta(days=90),
}
DISCLOSE_WITHIN = timedelta(days=7)  # after the fix is deployed

# E-mailed reports from one sender: enough for a researcher, not a ticket flood.
EMAILED_REPORTS = limiter.Rate("security-report-mails", burst=5, refill=3600)
BODY_LIMIT = 20000


class DisclosureError(Exception):
    """A report that cannot be filed, or a step that cannot be taken: one line."""


def report_for(ticket: Ticket) -> SecurityReport:
    """The tracking row of a security ticket (made if an older ticket has none)."""
    report, _ = SecurityReport.objects.get_or_create(
        ticket=ticket, defaults={"received_at": ticket.created_at}
    )
    return report


def track(ticket: Ticket, *, acknowledged: bool) -> SecurityReport:
    report = report_for(ticket)
    if acknowledged and report.acknowledged_at is None:
        SecurityReport.objects.filter(pk=report.pk).update(acknowledged_at=timezone.now())
        report.refresh_from_db()
    return report


# --- e-mailed reports -------------------------------------------------------------------
def _text_of(message) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        text = part.get_content()
    except (LookupError, ValueError):  # an unknown charset: bytes as best we can
        text = part.get_payload(decode=True).decode("utf-8", "replace")
    if part.get_content_type() == "text/html":
        text = strip_tags(text)
    return text.strip()


def file_emailed_report(raw: bytes) -> Ticket:
    """File one e-mail as an urgent security ticket and acknowledge it to its sender."""
    from .tickets import acknowledge_report, tell_security_staff

    message = BytesParser(policy=policy.default).parsebytes(raw)
    # Never answer a machine: an auto-reply to an auto-reply is a mail loop.
    if (message.get("Auto-Submitted") or "no").strip().lower() != "no" or message.get(
        "X-Autoreply"
    ):
        raise DisclosureError("not filed: an automatic message")
    name, address = parseaddr(str(message.get("Reply-To") or message.get("From") or ""))
    try:
        validate_email(address)
    except ValidationError:
        raise DisclosureError("not filed: no valid sender address") from None
    if address.split("@")[0].lower() in ("mailer-daemon", "postmaster", "noreply", "no-reply"):
        raise DisclosureError("not filed: a bounce or an unattended sender")
    try:
        limiter.take(EMAILED_REPORTS, address.lower())
    except limiter.RateLimited as exc:
        raise DisclosureError(f"not filed: too many reports from this sender ({exc})") from None
    subject = " ".join(str(message.get("Subject") or "").split())[:200] or "Security report"
    body = _text_of(message)[:BODY_LIMIT] or "(the e-mail had no text)"
    name = " ".join(header_safe(name or address).split())[:200]
    follow_up = _follow_up(subject, address)
    if follow_up is not None:
        return _add_to(follow_up, name, body)
    with transaction.atomic(using=CATALOG):
        ticket = Ticket.objects.create(
            tenant=None,
            subject=subject,
            category=Ticket.SECURITY,
            priority=Ticket.URGENT,
            opened_by_id=0,
            opened_by_name=name,
            opened_by_email=address,
        )
        first = TicketMessage.objects.create(
            ticket=ticket, side=TicketMessage.CUSTOMER, author=name, body=body
        )
        SecurityReport.objects.create(ticket=ticket)
        platform_record(
            "security.report_received",
            by=Named(f"reporter {address}"),
            target=f"ticket #{ticket.pk}",
            source="e-mail",
        )
    tell_security_staff(ticket, first)
    acknowledge_report(ticket, first)
    log.warning("security report received by e-mail: ticket #%s", ticket.pk)
    return ticket


def _follow_up(subject: str, address: str) -> Ticket | None:
    """The open outsider's ticket an answer belongs to: its number in the subject and
    the same sender (anyone can write a number; only the reporter's address counts)."""
    match = re.search(r"ticket #(\d{1,12})\b", subject, re.IGNORECASE)
    if match is None:
        return None
    return (
        Ticket.objects.filter(
            pk=int(match[1]),
            tenant__isnull=True,
            category=Ticket.SECURITY,
            opened_by_email__iexact=address,
        )
        .exclude(state=Ticket.CLOSED)
        .first()
    )


def _add_to(ticket: Ticket, name: str, body: str) -> Ticket:
    from .tickets import tell_security_staff

    with transaction.atomic(using=CATALOG):
        message = TicketMessage.objects.create(
            ticket=ticket, side=TicketMessage.CUSTOMER, author=name, body=body
        )
        Ticket.objects.filter(pk=ticket.pk).update(state=Ticket.OPEN, updated_at=timezone.now())
        platform_record(
            "support.ticket_answered",
            by=Named(f"reporter {ticket.opened_by_email}"),
            target=f"ticket #{ticket.pk}",
            side="customer",
        )
    tell_security_staff(ticket, message)
    ticket.refresh_from_db()
    return ticket


# --- the staff's steps ------------------------------------------------------------------
def _clean(field: str, value: str, *, url=False) -> str:
    value = " ".join((value or "").split()) if not url else (value or "").strip()
    if url and value:
        try:
            URLValidator(schemes=["https"])(value)
        except ValidationError:
            raise DisclosureError(f"{field}: an https address") from None
    return value[:100] if not url else value


def advance(
    report: SecurityReport,
    *,
    member: StaffMember,
    stage: str,
    severity: str = "",
    fixed_in: str = "",
    advisory_id: str = "",
    advisory_url: str = "",
    note: str = "",
) -> SecurityReport:
    """Move a report one step on (only the steps ``SecurityReport.NEXT`` allows)."""
    require(member, "security.reports")
    if stage not in SecurityReport.NEXT.get(report.stage, ()):
        allowed = ", ".join(SecurityReport.NEXT.get(report.stage, ())) or "nothing"
        raise DisclosureError(f"a {report.stage} report can go to {allowed}, not {stage}")
    if severity and severity not in dict(SecurityReport.SEVERITIES):
        raise DisclosureError("unknown severity")
    changes: dict = {"stage": stage}
    now = timezone.now()
    if severity:
        changes["severity"] = severity
    if stage == SecurityReport.TRIAGED:
        if not (severity or report.severity):
            raise DisclosureError("rate the severity when you triage")
        changes["triaged_at"] = now
    elif stage == SecurityReport.FIXED:
        fixed_in = _clean("fixed in", fixed_in)
        if not fixed_in:
            raise DisclosureError("say which release fixes it")
        changes.update(fixed_in=fixed_in, fixed_at=now)
    elif stage == SecurityReport.DISCLOSED:
        advisory_id = _clean("advisory", advisory_id)
        advisory_url = _clean("advisory address", advisory_url, url=True)
        if not advisory_id:
            raise DisclosureError("give the advisory its identifier (e.g. OXY-2026-001)")
        changes.update(
            advisory_id=advisory_id, advisory_url=advisory_url, disclosed_at=now, closed_at=now
        )
    elif stage == SecurityReport.REJECTED:
        if not note.strip():
            raise DisclosureError("say why it is not a vulnerability")
        changes["closed_at"] = now
    if note.strip():
        changes["notes"] = (
            report.notes + f"\n[{now:%Y-%m-%d %H:%M}] {member.name}: {note.strip()}"
        ).strip()[:20000]
    with transaction.atomic(using=CATALOG):
        moved = SecurityReport.objects.filter(pk=report.pk, stage=report.stage).update(**changes)
        if not moved:
            raise DisclosureError("someone else moved this report meanwhile: reload")
        platform_record(
            "security.report_advanced",
            by=member.user,
            target=f"ticket #{report.ticket_id}",
            stage=stage,
            severity=changes.get("severity", report.severity),
            fixed_in=changes.get("fixed_in", ""),
            advisory=changes.get("advisory_id", ""),
        )
    report.refresh_from_db()
    return report


def deadline(report: SecurityReport):
    """(what is due next, by when) for an open report, or None."""
    if report.stage == SecurityReport.RECEIVED:
        return "triage", report.received_at + TRIAGE_WITHIN
    if report.stage in (SecurityReport.TRIAGED, SecurityReport.FIXING):
        within = FIX_WITHIN.get(report.severity)
        return ("fix", report.received_at + within) if within else None
    if report.stage == SecurityReport.FIXED and report.fixed_at:
        return "advisory", report.fixed_at + DISCLOSE_WITHIN
    return None


def board(now=None) -> list[dict]:
    """Every report, open ones first, each with its next deadline and whether it is late."""
    now = now or timezone.now()
    rows = []
    for report in SecurityReport.objects.select_related("ticket", "ticket__tenant"):
        due = deadline(report)
        rows.append(
            {
                "report": report,
                "due": due[0] if due else "",
                "due_at": due[1] if due else None,
                "late": bool(due and due[1] < now),
            }
        )
    rows.sort(
        key=lambda r: (not r["report"].is_open, not r["late"], -r["report"].received_at.timestamp())
    )
    return rows
