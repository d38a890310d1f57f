"""``oxygis audit verify --tenant SLUG | --all | --catalog`` and ``oxygis audit seal``:
recompute audit chains against their signed digests (C17), sign their heads now."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from oxygis.backups import digests


class Command(BaseCommand):
    help = "Verify the audit trails against their signed digests, or sign them now."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        for name, text in (
            ("verify", "recompute the chains and hold them against their signed digests"),
            ("seal", "sign the head of the chains now (the worker does it hourly)"),
        ):
            action = sub.add_parser(name, help=text)
            which = action.add_mutually_exclusive_group(required=True)
            which.add_argument("--tenant", metavar="SLUG", help="one tenant's database")
            which.add_argument("--all", action="store_true", help="the catalog and every tenant")
            which.add_argument("--catalog", action="store_true", help="the catalog's database")

    def handle(self, *args, action, tenant, all, catalog, **options):
        try:
            targets = digests.targets_named(slug=tenant, everything=all, catalog=catalog)
        except LookupError as exc:
            raise CommandError(str(exc), returncode=2) from None
        if action == "seal":
            for target in targets:
                digest = digests.seal(target)
                self.stdout.write(
                    f"{target.what}: signed through #{digest.seq}"
                    if digest
                    else f"{target.what}: nothing new to sign (or broken: see the alerts)"
                )
            return
        broken = 0
        for number, target in enumerate(targets, 1):
            if len(targets) > 20 and number % 100 == 0:
                self.stderr.write(f"... {number}/{len(targets)} verified")
            verdict = digests.verify(target)
            broken += not verdict.ok
            self.stdout.write(str(verdict))
        if broken:
            self.stderr.write(f"{broken} of {len(targets)} audit trail(s) broken")
            sys.exit(1)
