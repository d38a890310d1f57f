"""S10: vulnerability reports, e-mailed to the security.txt address or sent from the
in-app form, become urgent tickets acknowledged at once, and the console tracks each to
its fix and advisory, every step in the platform's audit log."""

import datetime as dt
import secrets

from django.utils import timezone

from oxygis.audit.models import AuditEvent
from oxygis.platform.disclosure import board
from oxygis.platform.models import SecurityReport, StaffMember, Ticket
from oxygis.tenancy.context import CATALOG, using_database
from tests.fixtures import mails_to
from tests.served import oxygis

from .staffing import make_staff, open_ticket_as_owner


def email(sender: str, subject: str, body: str = "Stored XSS in a contact's name.", **headers):
    lines = [f"From: {sender}", f"Subject: {subject}", "To: security@oxygis.eu"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines += ["Content-Type: text/plain; charset=utf-8", "", body, ""]
    return "\r\n".join(lines)


def report(raw: str):
    return oxygis("security", "report", input=raw)


def researcher() -> str:
    return f"eve-{secrets.token_hex(3)}@research.example"


def filed(done) -> Ticket:
    assert done.returncode == 0, done.stderr
    number = int(done.stdout.strip().rsplit("#", 1)[1])
    with using_database(CATALOG):
        return Ticket.objects.get(pk=number)


def test_an_emailed_report_is_an_urgent_ticket_acknowledged_at_once():
    """S10: filed as an urgent security ticket with no tenant, tracked from "received",
    the reporter acknowledged (answers come back to the security inbox), the security
    staff told, the platform's log written."""
    security = make_staff(StaffMember.SECURITY)
    eve = researcher()
    ticket = filed(report(email(f"Eve Researcher <{eve}>", "XSS in contacts")))
    assert (ticket.tenant_id, ticket.category, ticket.priority) == (None, "security", 4)
    assert ticket.opened_by_email == eve and ticket.opened_by_name == "Eve Researcher"
    with using_database(CATALOG):
        tracked = SecurityReport.objects.get(ticket=ticket)
        assert ticket.messages.get().body == "Stored XSS in a contact's name."
        assert AuditEvent.objects.filter(
            action="security.report_received", target=f"ticket #{ticket.pk}"
        ).exists()
    assert tracked.stage == "received" and tracked.acknowledged_at is not None
    (ack,) = mails_to(eve)
    assert str(ack["Subject"]) == f"We received your security report (ticket #{ticket.pk})"
    assert str(ack["Reply-To"]) == "security@oxygis.eu"
    assert "by e-mail" in ack.get_body(preferencelist=("plain",)).get_content()
    told = mails_to(security.member.user.email)
    assert any(f"[Security report] New ticket #{ticket.pk}" in str(m["Subject"]) for m in told)


def test_the_reporters_answer_joins_their_ticket_and_nobody_elses():
    """S10: "ticket #N" in the subject from the reporter's address adds to N; the same
    subject from another address opens a ticket of its own."""
    eve = researcher()
    ticket = filed(report(email(eve, "SQL injection")))
    again = filed(
        report(email(eve, f"Re: We received your security report (ticket #{ticket.pk})", "PoC"))
    )
    assert again.pk == ticket.pk
    with using_database(CATALOG):
        assert [m.body for m in ticket.messages.all()][-1] == "PoC"
    mallory = filed(report(email("mallory@elsewhere.example", f"ticket #{ticket.pk}", "mine")))
    assert mallory.pk != ticket.pk
    with using_database(CATALOG):
        assert ticket.messages.count() == 2


def test_machines_and_floods_are_not_filed():
    """S10: auto-replies and bounces never get an answer (no mail loop); one sender
    files five reports an hour at most. Each refusal is one line, exit 2."""
    eve = researcher()
    for raw, said in (
        (email(eve, "Out of office", **{"Auto-Submitted": "auto-replied"}), "automatic"),
        (email("MAILER-DAEMON@mx.example", "Undelivered"), "bounce"),
        (email("not an address", "hello"), "no valid sender"),
    ):
        done = report(raw)
        assert done.returncode == 2 and said in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    for n in range(5):
        filed(report(email(eve, f"finding {n}")))
    flood = report(email(eve, "finding 6"))
    assert flood.returncode == 2 and "too many reports" in flood.stderr
    assert len(mails_to(eve)) == 5


def test_the_console_tracks_a_report_to_its_fix_and_advisory():
    """S10: triage needs a severity, a fix names its release, an advisory its identifier;
    no stage is skipped; support staff cannot move a report; each step is audited; the
    staff's answer reaches the outside reporter by e-mail."""
    eve = researcher()
    ticket = filed(report(email(eve, "IDOR on orders")))
    security = make_staff(StaffMember.SECURITY).console()
    url = f"/tickets/{ticket.pk}/"
    page = security.get(url).content.decode()
    assert "None: reported by e-mail from outside" in page and "Ask for access" not in page

    def step(client, **data):
        response = client.post(url, {"form": "security", **data}, follow=True)
        return response.content.decode()

    def stage():
        with using_database(CATALOG):
            return SecurityReport.objects.get(ticket=ticket).stage

    assert "Select a valid choice" in step(security, stage="fixed", fixed_in="1")
    assert "rate the severity when you triage" in step(security, stage="triaged")
    assert stage() == "received"
    support = make_staff(StaffMember.SUPPORT).console()
    assert "your role may not do this" in step(support, stage="triaged", severity="high")
    assert stage() == "received"
    step(security, stage="triaged", severity="high", note="Reproduced on staging.")
    step(security, stage="fixing")
    assert "say which release fixes it" in step(security, stage="fixed")
    step(security, stage="fixed", fixed_in="2026.12.2")
    assert "give the advisory its identifier" in step(security, stage="disclosed")
    done = step(
        security,
        stage="disclosed",
        advisory_id="OXY-2026-004",
        advisory_url="https://oxygis.eu/advisories/OXY-2026-004",
    )
    assert "Advisory published" in done and "OXY-2026-004" in done
    with using_database(CATALOG):
        tracked = SecurityReport.objects.get(ticket=ticket)
        steps = list(
            AuditEvent.objects.filter(
                action="security.report_advanced", target=f"ticket #{ticket.pk}"
            )
            .order_by("seq")
            .values_list("details__stage", flat=True)
        )
    assert (tracked.severity, tracked.fixed_in, tracked.advisory_id) == (
        "high",
        "2026.12.2",
        "OXY-2026-004",
    )
    assert tracked.triaged_at and tracked.fixed_at and tracked.disclosed_at
    assert "Reproduced on staging." in tracked.notes
    assert steps == ["triaged", "fixing", "fixed", "disclosed"]

    answer = security.post(url, {"form": "reply", "body": "Fixed in 2026.12.2, thank you."})
    assert answer.status_code == 302
    reply = mails_to(eve)[-1]
    assert "Fixed in 2026.12.2" in reply.get_body(preferencelist=("plain",)).get_content()
    assert str(reply["Reply-To"]) == "security@oxygis.eu"
    grant = support.post(url, {"form": "grant", "scope": "read", "minutes": 60, "reason": "x"})
    assert "no workspace to enter" in grant.content.decode()  # nothing to enter from outside
    assert security.post(f"{url}close/").status_code == 302
    with using_database(CATALOG):
        assert Ticket.objects.get(pk=ticket.pk).is_closed
        assert AuditEvent.objects.filter(
            action="support.ticket_closed", target=f"ticket #{ticket.pk}"
        ).exists()


def test_an_in_app_report_is_tracked_too_and_the_board_shows_the_late(alpha):
    """S10: the tenant's security ticket gets its tracking row, acknowledged; a report
    untriaged after a day is late on the console's board."""
    _, ticket = open_ticket_as_owner(alpha, subject="Session fixation?", category="security")
    with using_database(CATALOG):
        tracked = SecurityReport.objects.get(ticket=ticket)
        assert tracked.acknowledged_at is not None and tracked.stage == "received"
        SecurityReport.objects.filter(pk=tracked.pk).update(
            received_at=timezone.now() - dt.timedelta(days=2)
        )
        row = next(r for r in board() if r["report"].pk == tracked.pk)
    assert row["late"] and row["due"] == "triage"
    page = make_staff(StaffMember.SECURITY).console().get("/security/").content.decode()
    assert f'data-report="{ticket.pk}" class="late"' in page
