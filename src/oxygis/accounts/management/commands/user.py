"""``oxygis user --tenant SLUG list|set-password USERNAME|unlock USERNAME``.

Passwords are read from the terminal (asked twice) or, for scripts, from standard input;
never from the command line, where other users and shell history would see them."""

from __future__ import annotations

import getpass
import sys

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from oxygis.accounts import actions
from oxygis.tenancy.commands import TenantCommand


class Command(TenantCommand):
    help = "List users of a tenant, set a password, lift a lockout."

    def add_tenant_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        sub.add_parser("list", help="list the tenant's users")
        setpw = sub.add_parser("set-password", help="set a user's password (asked, not given)")
        setpw.add_argument("username")
        unlock = sub.add_parser("unlock", help="lift a sign-in lockout")
        unlock.add_argument("username")

    def handle(self, *args, action, **options):
        return getattr(self, "do_" + action.replace("-", "_"))(**options)

    def _user(self, username):
        try:
            return get_user_model().objects.get(username__iexact=username)
        except get_user_model().DoesNotExist:
            raise CommandError(
                f"no user {username!r} in {self.tenant.slug}", returncode=2
            ) from None

    def do_list(self, **_):
        for user in get_user_model().objects.prefetch_related("groups").order_by("username"):
            roles = ", ".join(g.name for g in user.groups.all()) or "-"
            state = "active" if user.is_active else "deactivated"
            self.stdout.write(f"{user.username:<30} {user.email:<35} {state:<12} {roles}")

    def do_set_password(self, username, **_):
        user = self._user(username)
        if sys.stdin.isatty():
            first = getpass.getpass("New password: ")
            if getpass.getpass("Again: ") != first:
                raise CommandError("the two passwords differ", returncode=2)
        else:
            first = sys.stdin.readline().rstrip("\n")
        try:
            actions.set_password_by_operator(user, first)
        except actions.ActionRefused as exc:
            raise CommandError(str(exc), returncode=2) from None
        self.stdout.write(f"Password of {user.username} set; their sessions were ended.")

    def do_unlock(self, username, **_):
        cleared = actions.unlock(None, username)
        self.stdout.write(f"{username}: lockout lifted ({cleared} record(s) cleared).")
