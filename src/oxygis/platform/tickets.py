"""Support tickets (C14, S10): opened by a tenant administrator from inside the instance,
answered by staff on the console; both sides e-mailed, both logs written.

A security report is always urgent and its opener gets an acknowledgement by e-mail at
once (S10: reports are handled at top priority).
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from oxygis.tenancy.context import CATALOG, using_database

from .grants import end_grants_of_ticket, log_step, send_quietly
from .links import console_link, tenant_link
from .models import StaffMember, Ticket, TicketMessage
from .staff import StaffError, platform_record, require, with_users

# Who is told of a new ticket or a customer's answer, by category.
NOTIFIED_ROLES = {
    Ticket.QUESTION: (StaffMember.SUPPORT,),
    Ticket.RESTORE: (StaffMember.SUPPORT, StaffMember.OPERATIONS),
    Ticket.SECURITY: (StaffMember.SUPPORT, StaffMember.SECURITY),
}


def _clean_body(body: str) -> str:
    body = (body or "").strip()
    if not body:
        raise StaffError(_("write a message"))
    if len(body) > 20000:
        raise StaffError(_("a message holds at most 20,000 characters"))
    return body


def _notify(to: str, subject: str, ticket: Ticket, message: TicketMessage, link: str, *, ack=False):
    if to:
        # An outside reporter answers by e-mail: to the security inbox, which files the
        # answer on this ticket (disclosure.file_emailed_report).
        outsider = ticket.tenant is None and (ack or message.side == TicketMessage.STAFF)
        send_quietly(
            to,
            subject,
            "platform/email/ticket",
            {"ticket": ticket, "message": message, "link": link, "acknowledgement": ack},
            reply_to=security_inbox() if outsider else None,
        )


def security_inbox() -> str | None:
    """The e-mail address security.txt gives, if it is one."""
    contact = settings.SECURITY_CONTACT
    return contact.removeprefix("mailto:") if contact.startswith("mailto:") else None


def _console_link(ticket: Ticket) -> str:
    return console_link("console-ticket", ticket_id=ticket.pk)


def _tenant_link(ticket: Ticket) -> str:
    """Where the opener reads the ticket; none for a report e-mailed from outside (the
    e-mails carry the whole message to them instead)."""
    if ticket.tenant is None:
        return ""
    return tenant_link(ticket.tenant.slug, "support-ticket", ticket_id=ticket.pk)


def _log(action: str, ticket: Ticket, *, by, **details) -> None:
    """In both logs for a tenant's ticket; in the platform's alone for an outsider's."""
    if ticket.tenant is not None:
        log_step(action, ticket.tenant, by=by, target=f"ticket #{ticket.pk}", **details)
    else:
        platform_record(action, by=by, target=f"ticket #{ticket.pk}", **details)


def _from(ticket: Ticket) -> str:
    return ticket.tenant.name if ticket.tenant is not None else ticket.opened_by_email


def tell_security_staff(ticket: Ticket, message: TicketMessage) -> None:
    _tell_staff(
        ticket,
        message,
        f"[Security report] New ticket #{ticket.pk} from {_from(ticket)}: {ticket.subject}",
    )


def acknowledge_report(ticket: Ticket, message: TicketMessage) -> None:
    """The acknowledgement SECURITY.md promises within minutes: sent at once, recorded."""
    from .disclosure import track

    _notify(
        ticket.opened_by_email,
        f"We received your security report (ticket #{ticket.pk})",
        ticket,
        message,
        _tenant_link(ticket),
        ack=True,
    )
    track(ticket, acknowledged=bool(ticket.opened_by_email))


def _tell_staff(ticket: Ticket, message: TicketMessage, subject: str) -> None:
    with using_database(CATALOG):
        members = with_users(StaffMember.objects.filter(role__in=NOTIFIED_ROLES[ticket.category]))
        addresses = sorted({m.user.email for m in members if m.is_active and m.user.email})
    for address in addresses:
        _notify(address, subject, ticket, message, _console_link(ticket))


def open_ticket(*, tenant, user, subject: str, body: str, category: str, priority: int) -> Ticket:
    """A tenant administrator (``user``, of ``tenant``) asks for help."""
    subject = " ".join((subject or "").split())
    if not subject:
        raise StaffError(_("give the ticket a subject"))
    body = _clean_body(body)
    if category not in dict(Ticket.CATEGORIES):
        raise StaffError(_("unknown category"))
    priority = Ticket.URGENT if category == Ticket.SECURITY else int(priority)
    if priority not in dict(Ticket.PRIORITIES):
        raise StaffError(_("unknown priority"))
    name = user.get_full_name() or user.get_username()
    with transaction.atomic(using=CATALOG):
        ticket = Ticket.objects.create(
            tenant=tenant,
            subject=subject[:200],
            category=category,
            priority=priority,
            opened_by_id=user.pk,
            opened_by_name=name[:200],
            opened_by_email=user.email,
        )
        message = TicketMessage.objects.create(
            ticket=ticket, side=TicketMessage.CUSTOMER, author=name[:200], body=body
        )
    log_step(
        "support.ticket_opened",
        tenant,
        by=user,
        target=f"ticket #{ticket.pk}",
        category=category,
        priority=ticket.get_priority_display(),
    )
    if category == Ticket.SECURITY:
        tell_security_staff(ticket, message)
        acknowledge_report(ticket, message)
    else:
        _tell_staff(ticket, message, f"New ticket #{ticket.pk} from {tenant.name}: {subject}")
    return ticket


def customer_reply(ticket: Ticket, *, user, body: str) -> TicketMessage:
    if ticket.is_closed:
        raise StaffError(_("this ticket is closed: open a new one"))
    body = _clean_body(body)
    name = user.get_full_name() or user.get_username()
    with transaction.atomic(using=CATALOG):
        message = TicketMessage.objects.create(
            ticket=ticket, side=TicketMessage.CUSTOMER, author=name[:200], body=body
        )
        Ticket.objects.filter(pk=ticket.pk).update(state=Ticket.OPEN, updated_at=timezone.now())
    ticket.refresh_from_db()
    _log("support.ticket_answered", ticket, by=user, side="customer")
    _tell_staff(ticket, message, f"Ticket #{ticket.pk} ({_from(ticket)}): new message")
    return message


def staff_reply(ticket: Ticket, *, member: StaffMember, body: str) -> TicketMessage:
    require(member, "tickets.answer")
    if ticket.is_closed:
        raise StaffError(_("this ticket is closed"))
    body = _clean_body(body)
    with transaction.atomic(using=CATALOG):
        message = TicketMessage.objects.create(
            ticket=ticket, side=TicketMessage.STAFF, author=member.name, body=body
        )
        Ticket.objects.filter(pk=ticket.pk).update(state=Ticket.ANSWERED, updated_at=timezone.now())
    ticket.refresh_from_db()
    _log("support.ticket_answered", ticket, by=member.user, side="staff")
    _notify(
        ticket.opened_by_email,
        f"Oxygis support answered your ticket #{ticket.pk}: {ticket.subject}",
        ticket,
        message,
        _tenant_link(ticket),
    )
    return message


def close_ticket(ticket: Ticket, *, by) -> None:
    """Closed by either side (``by``: a tenant user or a staff member's catalog user);
    every grant on it ends with it."""
    done = (
        Ticket.objects.filter(pk=ticket.pk)
        .exclude(state=Ticket.CLOSED)
        .update(state=Ticket.CLOSED, closed_at=timezone.now(), updated_at=timezone.now())
    )
    if not done:
        raise StaffError(_("this ticket is already closed"))
    ticket.refresh_from_db()
    end_grants_of_ticket(ticket, by=by)
    _log("support.ticket_closed", ticket, by=by)
