"""``oxygis dr rebuild|status``: thin over backups.recovery (C7)."""

from __future__ import annotations

import sys

from django.core.management.base import CommandError

from oxygis.tenancy.models import Plan

from ... import recovery
from ...cli import ActionCommand
from ...models import Recovery


class Command(ActionCommand):
    help = "Rebuild the platform from a backup site (disaster recovery); show how it went."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        rebuild = sub.add_parser(
            "rebuild", help="restore the catalog and every tenant from one backup site"
        )
        rebuild.add_argument("--from-site", required=True, metavar="URL")
        rebuild.add_argument(
            "--plan-order",
            default=",".join(recovery.DEFAULT_PLAN_ORDER),
            metavar="PLANS",
            help="which plans come back first (default: %(default)s)",
        )
        rebuild.add_argument("--jobs", type=int, default=2, help="tenants restored at once")
        rebuild.add_argument(
            "--onto",
            metavar="DATABASE_URL",
            help="the PostgreSQL server tenants are restored onto (default: the settings'); "
            "no password in it: PGPASSWORD or ~/.pgpass",
        )
        sub.add_parser("status", help="the last rebuild: per tenant, achieved RPO and RTO")

    def progress(self, text: str) -> None:
        # Tenants coming back are news worth a line, on a terminal or in a log.
        self.stderr.write(text)

    def do_rebuild(self, from_site, plan_order, jobs, onto, **_):
        order = tuple(p.strip() for p in plan_order.split(",") if p.strip())
        unknown = sorted(set(order) - {code for code, _ in Plan.CODES})
        if unknown:
            raise CommandError(
                f"unknown plan(s) in --plan-order: {', '.join(unknown)}", returncode=2
            )
        if jobs < 1:
            raise CommandError("--jobs must be at least 1", returncode=2)
        run = recovery.rebuild(
            from_site, plan_order=order, jobs=jobs, onto=onto, progress=self.progress
        )
        for line in recovery.report_lines(run):
            self.stdout.write(line)
        if run.state != Recovery.DONE:
            raise CommandError(
                "some tenants did not come back (listed above): fix the cause and run "
                "the same command again to continue",
                returncode=2,
            )

    def do_status(self, **_):
        run = Recovery.objects.order_by("-started_at").first()
        if run is None:
            self.stdout.write("no rebuild has run on this platform")
            return
        for line in recovery.report_lines(run):
            self.stdout.write(line)
        if run.state != Recovery.DONE:
            sys.exit(1)
