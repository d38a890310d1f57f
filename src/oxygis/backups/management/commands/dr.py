"""``oxygis dr rebuild|status``: thin over backups.recovery (C7)."""

from __future__ import annotations

import sys
from json import dumps

from django.core.management.base import CommandError

from oxygis.tenancy.models import Plan

from ... import drill, recovery
from ...cli import ActionCommand
from ...models import Drill, Recovery


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
        rebuild.add_argument(
            "--sample",
            type=int,
            default=0,
            metavar="N",
            help="bring back only N tenants, one of each plan first (a drill)",
        )
        status = sub.add_parser("status", help="the last rebuild: per tenant, achieved RPO and RTO")
        status.add_argument("--json", action="store_true", help="as JSON")
        drill = sub.add_parser(
            "drill", help="rehearse a rebuild into a scratch place and measure its RTO"
        )
        drill.add_argument("--site", metavar="URL", help="default: the site drilled longest ago")
        drill.add_argument("--sample", type=int, metavar="N", help="tenants restored")
        drill.add_argument("--jobs", type=int, default=2, help="tenants restored at once")

    def progress(self, text: str) -> None:
        # Tenants coming back are news worth a line, on a terminal or in a log.
        self.stderr.write(text)

    def do_rebuild(self, from_site, plan_order, jobs, onto, sample, **_):
        order = tuple(p.strip() for p in plan_order.split(",") if p.strip())
        unknown = sorted(set(order) - {code for code, _ in Plan.CODES})
        if unknown:
            raise CommandError(
                f"unknown plan(s) in --plan-order: {', '.join(unknown)}", returncode=2
            )
        if jobs < 1 or sample < 0:
            raise CommandError("--jobs must be at least 1, --sample at least 0", returncode=2)
        run = recovery.rebuild(
            from_site,
            plan_order=order,
            jobs=jobs,
            onto=onto,
            sample=sample,
            progress=self.progress,
        )
        for line in recovery.report_lines(run):
            self.stdout.write(line)
        if run.state != Recovery.DONE:
            raise CommandError(
                "some tenants did not come back (listed above): fix the cause and run "
                "the same command again to continue",
                returncode=2,
            )

    def do_status(self, json=False, **_):
        run = Recovery.objects.order_by("-started_at").first()
        if json:
            self.stdout.write(dumps(recovery.report_data(run) if run else None))
        elif run is None:
            self.stdout.write("no rebuild has run on this platform")
        else:
            for line in recovery.report_lines(run):
                self.stdout.write(line)
        last = Drill.objects.first()
        if last is not None and not json:
            self.stdout.write("")
            self.stdout.write(drill.summary(last))
        if run is not None and run.state != Recovery.DONE:
            sys.exit(1)

    def do_drill(self, site, sample, jobs, **_):
        if jobs < 1 or (sample is not None and sample < 1):
            raise CommandError("--jobs and --sample must be at least 1", returncode=2)
        run = drill.run_drill(site=site, sample=sample, jobs=jobs, progress=self.progress)
        self.stdout.write(drill.summary(run))
        for item in run.report:
            self.stdout.write(
                f"  {item['slug']:<32} {item['plan']:<9} {item['state']:<7} "
                f"{drill.minutes(item['rto_seconds'])} (target {item['rto_target_hours']} h)"
            )
        if run.state != Drill.OK:
            raise CommandError(run.detail or "the drill did not meet its targets", returncode=1)
