"""Platform staff (C14): who they are, what each role may do, and the audit of it all.

Staff are users of the catalog database with a ``StaffMember`` row. They are made only
here: by an operator (``oxygis staff create``, audited with the operating-system user
and host) or by a console administrator; never by Django's ``createsuperuser``, which
the ``oxygis`` command refuses in production (cli.py).
"""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from oxygis.accounts.tokens import invitation_token_generator
from oxygis.audit.events import record
from oxygis.core.mail import send_templated
from oxygis.core.text import validate_single_line
from oxygis.tenancy.context import CATALOG, using_database

from .links import console_link
from .models import StaffMember

# What each role may do on the console. Support alone asks for access to a tenant:
# the people who run the platform (operations, admin) do not read customers' data.
RIGHTS = {
    StaffMember.SUPPORT: {
        "tenants.view",
        "tickets.view",
        "tickets.answer",
        "grants.request",
    },
    StaffMember.OPERATIONS: {
        "tenants.view",
        "tenants.manage",
        "backups.manage",
        "alerts.view",
        "alerts.manage",
        "tickets.view",
        "security.scans",
    },
    StaffMember.SECURITY: {
        "tenants.view",
        "tickets.view",
        "tickets.answer",
        "alerts.view",
        "alerts.manage",
        "audit.view",
        "staff.view",
        "security.reports",
        "security.scans",
    },
    StaffMember.ADMIN: {
        "tenants.view",
        "tenants.manage",
        "tenants.drop",
        "backups.manage",
        "alerts.view",
        "alerts.manage",
        "tickets.view",
        "tickets.answer",
        "audit.view",
        "staff.view",
        "staff.manage",
        "security.reports",
        "security.scans",
    },
}


class StaffError(Exception):
    """A refused staff action: one line, safe to show."""


@dataclass(frozen=True)
class Operator:
    """Whoever runs an ``oxygis`` command on a server: named by the operating system's
    user and the host, in the platform's audit log (there is no sign-in at a shell)."""

    os_user: str
    host: str
    pk = None
    is_authenticated = False

    @classmethod
    def current(cls) -> Operator:
        try:
            user = getpass.getuser()
        except Exception:  # no name for this uid (a container): its number, then
            user = f"uid {os.getuid()}"
        return cls(user, socket.gethostname())

    def get_username(self) -> str:
        return f"operator {self.os_user}@{self.host}"


def staff_of(user) -> StaffMember | None:
    """The active staff member behind a signed-in catalog user, or None."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.pk:
        return None
    member = StaffMember.objects.filter(user_id=user.pk).first()
    if member is None or not user.is_active:
        return None
    member.__dict__["user"] = user  # the one already loaded, no second query
    return member


def with_users(members) -> list[StaffMember]:
    """Staff members with their catalog users loaded in one query (not one per row)."""
    members = list(members)
    users = get_user_model()._default_manager.using(CATALOG).in_bulk([m.user_id for m in members])
    for member in members:
        member.__dict__["user"] = users[member.user_id]
    return members


def may(member: StaffMember | None, right: str) -> bool:
    return member is not None and member.is_active and right in RIGHTS[member.role]


def require(member: StaffMember | None, right: str) -> None:
    if not may(member, right):
        raise PermissionDenied(f"your role may not do this ({right})")


def platform_record(action: str, *, by, request=None, target: str = "", **details) -> None:
    """One event in the platform's own audit log (the catalog's chain)."""
    with using_database(CATALOG):
        record(action, request=request, actor=by, target=target, **details)


def _check_role(role: str) -> None:
    if role not in RIGHTS:
        raise StaffError(f"unknown role {role!r} (choose one of: {', '.join(RIGHTS)})")


def create_staff(
    *, username: str, email: str, name: str, role: str, by, password: str | None = None
):
    """A new staff member. With ``password`` (an operator at a terminal) it is checked
    against the password policy; without, the person is e-mailed an invitation to set
    their own, and nobody else ever knows it. Either way 2FA enrolment comes first at
    their first sign-in (the console has no page before it)."""
    _check_role(role)
    username, email, name = username.strip().lower(), email.strip(), name.strip()
    if not username or not name or "@" not in email:
        raise StaffError("a staff member needs a user name, a name and an e-mail address")
    try:
        # The model's own rules, which create() does not run: the name is shown to
        # customers and goes into e-mail subjects and both audit logs.
        validate_single_line(name)
        validate_email(email)
        get_user_model().username_validator(username)
    except ValidationError as exc:
        raise StaffError(" ".join(exc.messages)) from None
    with using_database(CATALOG):
        User = get_user_model()
        if User.objects.filter(username__iexact=username).exists():
            raise StaffError(f"a user {username!r} already exists")
        if User.objects.filter(email__iexact=email).exists():
            raise StaffError(f"a user with the address {email} already exists")
        user = User(username=username, email=email, first_name=name[:150])
        if password is not None:
            try:
                validate_password(password, user)
            except ValidationError as exc:
                raise StaffError(" ".join(exc.messages)) from None
            user.set_password(password)
        else:
            user.set_unusable_password()
        with transaction.atomic(using=CATALOG):
            user.save()
            member = StaffMember.objects.create(
                user_id=user.pk, role=role, name=name, created_by=by.get_username()[:200]
            )
            record("staff.created", actor=by, target=username, role=role)
        if password is None:
            send_invitation(member)
    return member


def send_invitation(member: StaffMember) -> None:
    with using_database(CATALOG):
        user = member.user
        link = console_link(
            "invitation-accept",
            uidb64=urlsafe_base64_encode(force_bytes(user.pk)),
            token=invitation_token_generator.make_token(user),
        )
    send_templated(
        user.email,
        "Your Oxygis staff account",
        "console/email/staff_invitation",
        {"member": member, "link": link},
    )


def set_role(member: StaffMember, role: str, *, by) -> None:
    _check_role(role)
    if member.role == role:
        return
    before = member.role
    with transaction.atomic(using=CATALOG), using_database(CATALOG):
        StaffMember.objects.filter(pk=member.pk).update(role=role)
        record(
            "staff.role_changed", actor=by, target=member.user.username, before=before, after=role
        )
    member.role = role


def set_active(member: StaffMember, active: bool, *, by) -> None:
    """Disable (or enable again) a staff member; disabling ends their console sessions
    at once and every grant they hold."""
    from .grants import end_grants_of_staff

    if getattr(by, "pk", None) == member.user_id and not active:
        raise StaffError("you cannot disable your own account")
    with using_database(CATALOG):
        user = member.user
        if user.is_active == active:
            return
        with transaction.atomic(using=CATALOG):
            user.is_active = active
            user.save(update_fields=["is_active"])
            record("staff.enabled" if active else "staff.disabled", actor=by, target=user.username)
        if not active:
            from oxygis.accounts.sessions import end_other_sessions

            end_other_sessions(user)
            end_grants_of_staff(member, by=by)
