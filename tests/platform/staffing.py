"""Staff personas for the console tests: a staff member of each role, signed in on the
console with their password and a TOTP code, as a person would."""

from __future__ import annotations

import base64
import html
import itertools
import re
import secrets
from dataclasses import dataclass

from django_otp.plugins.otp_totp.models import TOTPDevice

from oxygis.platform.models import AccessGrant, StaffMember, Ticket
from oxygis.platform.staff import Operator, create_staff
from oxygis.tenancy.context import CATALOG, using_database
from tests.fixtures import HttpsClient, totp

CONSOLE = "console.localhost"
STAFF_PASSWORD = "Quartz-Lamp-2026!x"
_counter = itertools.count()


@dataclass
class Staff:
    member: StaffMember
    username: str
    secret: str | None  # base32 TOTP secret, None before enrolment
    _step: int = 0

    def console(self) -> HttpsClient:
        """A console client signed in with the password and the next TOTP code."""
        client = HttpsClient(CONSOLE)
        client.sign_in(self.username, STAFF_PASSWORD)
        if self.secret:
            # A code is good once: each sign-in of this person uses the next step.
            code = totp(self.secret, step_offset=self._step)
            self._step += 1
            response = client.post("/accounts/2fa/verify/", {"code": code})
            assert response.status_code == 302, response.content.decode()[:500]
        return client


def make_staff(role: str, *, enrolled: bool = True, name: str | None = None) -> Staff:
    username = f"staff{next(_counter)}-{secrets.token_hex(3)}"
    member = create_staff(
        username=username,
        email=f"{username}@oxygis.example",
        name=name or f"Ana {username}",
        role=role,
        password=STAFF_PASSWORD,
        by=Operator("test", "localhost"),
    )
    secret = None
    if enrolled:
        with using_database(CATALOG):
            device = TOTPDevice.objects.create(user=member.user, name="phone", confirmed=True)
        secret = base64.b32encode(bytes.fromhex(device.key)).decode().rstrip("=")
    return Staff(member, username, secret)


def open_ticket_as_owner(personas, subject="Help with an order", category="question"):
    """The tenant's owner opens a ticket from the instance; returns the Ticket."""
    owner = personas.client()
    owner.sign_in(personas.owner_username, personas.owner_password)
    response = owner.post(
        "/settings/support/new/",
        {"subject": subject, "category": category, "priority": 2, "body": "Order W-1 looks odd."},
    )
    assert response.status_code == 302, response.content.decode()[:1000]
    ticket = Ticket.objects.filter(tenant=personas.tenant, subject=subject).latest("pk")
    return owner, ticket


def ask_access(staff: Staff, ticket, *, scope="read", minutes=60):
    client = staff.console()
    response = client.post(
        f"/tickets/{ticket.pk}/",
        {"form": "grant", "scope": scope, "minutes": minutes, "reason": "look at order W-1"},
    )
    assert response.status_code == 302, response.content.decode()[:1000]
    return client, AccessGrant.objects.filter(ticket=ticket).latest("pk")


def enter(client: HttpsClient, grant, personas) -> HttpsClient:
    """Follow the console's hand-off to the tenant host: a new support session there."""
    path = handoff_path(client, grant, personas)
    support = HttpsClient(personas.host)
    entered = support.get(path)
    assert entered.status_code == 302, entered.content.decode()[:500]
    return support


def handoff_path(client: HttpsClient, grant, personas) -> str:
    """The path of the one-time link the console's "Open workspace" gives."""
    response = client.post(f"/grants/{grant.pk}/open/")
    assert response.status_code == 200, response.content.decode()[:500]
    url = re.search(r'id="handoff" href="([^"]+)"', response.content.decode())[1]
    assert url.startswith(f"https://{personas.host}")
    return html.unescape(url.split(personas.host, 1)[1].lstrip(":0123456789"))
