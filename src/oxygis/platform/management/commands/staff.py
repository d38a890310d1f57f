"""``oxygis staff create|list|role|disable|enable``: the platform's staff, by an operator.

A password is read from the terminal (asked twice) or, for scripts, from standard input;
never from the command line. ``--invite`` e-mails a link instead, so that nobody but the
new staff member ever knows their password. Every change is in the platform's audit log
under the operator's OS user and host.
"""

from __future__ import annotations

import getpass
import sys

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from oxygis.platform.models import StaffMember
from oxygis.platform.staff import (
    RIGHTS,
    Operator,
    StaffError,
    create_staff,
    set_active,
    set_role,
    with_users,
)
from oxygis.tenancy.commands import write_table
from oxygis.tenancy.context import CATALOG, using_database


class Command(BaseCommand):
    help = "Create and manage the platform's staff accounts (console users)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        create = sub.add_parser("create", help="a new staff member")
        create.add_argument("username")
        create.add_argument("--email", required=True)
        create.add_argument("--name", required=True, help="shown to customers: 'Support: NAME'")
        create.add_argument("--role", required=True, choices=sorted(RIGHTS))
        create.add_argument(
            "--invite", action="store_true", help="e-mail a link to set the password"
        )
        sub.add_parser("list", help="list staff members")
        role = sub.add_parser("role", help="change a staff member's role")
        role.add_argument("username")
        role.add_argument("role", choices=sorted(RIGHTS))
        for action in ("disable", "enable"):
            sub.add_parser(action, help=f"{action} a staff member").add_argument("username")

    def handle(self, *args, action, **options):
        with using_database(CATALOG):
            try:
                return getattr(self, f"do_{action}")(**options)
            except StaffError as exc:
                raise CommandError(str(exc), returncode=2) from None

    def _member(self, username) -> StaffMember:
        user = get_user_model()._default_manager.filter(username__iexact=username).first()
        member = StaffMember.objects.filter(user_id=user.pk).first() if user else None
        if member is None:
            raise StaffError(f"no staff member {username!r}")
        return member

    def do_create(self, username, email, name, role, invite, **_):
        password = None
        if not invite:
            if sys.stdin.isatty():
                password = getpass.getpass("Password: ")
                if getpass.getpass("Again: ") != password:
                    raise StaffError("the two passwords differ")
            else:
                password = sys.stdin.readline().rstrip("\n")
        member = create_staff(
            username=username,
            email=email,
            name=name,
            role=role,
            password=password,
            by=Operator.current(),
        )
        how = "an invitation was e-mailed" if invite else "password set"
        self.stdout.write(
            f"Staff member {member.user.username} ({member.get_role_display()}) created: "
            f"{how}; two-factor enrolment comes first at their first sign-in."
        )

    def do_list(self, **_):
        rows = [("USERNAME", "NAME", "ROLE", "STATE", "E-MAIL")]
        for m in sorted(with_users(StaffMember.objects.all()), key=lambda m: m.user.username):
            state = "active" if m.user.is_active else "disabled"
            rows.append((m.user.username, m.name, m.role, state, m.user.email))
        write_table(self.stdout, rows)
        if len(rows) == 1:
            self.stdout.write("(no staff)")

    def do_role(self, username, role, **_):
        set_role(self._member(username), role, by=Operator.current())
        self.stdout.write(f"{username} now has the {role} role.")

    def do_disable(self, username, **_):
        set_active(self._member(username), False, by=Operator.current())
        self.stdout.write(f"{username} disabled: sessions ended, grants revoked.")

    def do_enable(self, username, **_):
        set_active(self._member(username), True, by=Operator.current())
        self.stdout.write(f"{username} enabled.")
