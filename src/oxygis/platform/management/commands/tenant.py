"""``oxygis tenant create|list|suspend|resume|plan|replicas|drop|migrate``: thin over
the platform's life-cycle actions (platform/lifecycle.py), the console's too; each change
is in the platform's audit log under the operator's OS user and host."""

from __future__ import annotations

import sys
import time

from django.core.management.base import BaseCommand, CommandError

from oxygis.platform import lifecycle
from oxygis.platform import provisioning as actions
from oxygis.platform.fleet import migrate_each
from oxygis.platform.staff import Operator
from oxygis.tenancy.commands import write_table
from oxygis.tenancy.engines import EngineError
from oxygis.tenancy.hosts import site_url
from oxygis.tenancy.models import Plan, Tenant


class Command(BaseCommand):
    help = "Create, list, suspend, resume, drop and migrate tenants."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        create = sub.add_parser("create", help="provision a new tenant")
        create.add_argument("slug", help="3-40 chars of a-z, 0-9, '-'; becomes the subdomain")
        create.add_argument("--name", required=True, help="display name")
        create.add_argument("--plan", default=Plan.TRIAL, help="paid, trial, education, freemium")
        create.add_argument("--admin-email", default="", help="e-mail of the first administrator")
        sub.add_parser("list", help="list tenants")
        for action in ("suspend", "resume"):
            sub.add_parser(action, help=f"{action} a tenant").add_argument("slug")
        plan = sub.add_parser("plan", help="change a tenant's plan")
        plan.add_argument("slug")
        plan.add_argument("plan", help="paid, trial, education, freemium")
        drop = sub.add_parser("drop", help="drop a tenant and its database (irreversible)")
        drop.add_argument("slug")
        drop.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        replicas = sub.add_parser(
            "replicas", help="record the zones of a tenant's extra read replicas"
        )
        replicas.add_argument("slug")
        replicas.add_argument(
            "--zone", dest="zones", action="append", default=[], help="a zone (repeat)"
        )
        replicas.add_argument("--none", action="store_true", help="no extra replica")
        migrate = sub.add_parser("migrate", help="apply pending migrations to tenants")
        migrate.add_argument("slugs", nargs="*", metavar="SLUG")
        migrate.add_argument("--all", action="store_true", help="every tenant")
        migrate.add_argument(
            "--jobs", type=int, default=1, metavar="N", help="migrate N tenants at once"
        )

    def handle(self, *args, action, **options):
        try:
            getattr(self, f"do_{action}")(**options)
        except (actions.TenantError, EngineError) as exc:
            raise CommandError(str(exc), returncode=2) from None

    def do_create(self, slug, name, plan, admin_email, **_):
        self.stdout.write(f"Provisioning {slug} ...")
        made = lifecycle.create(
            slug, name=name, plan=plan, admin_email=admin_email, by=Operator.current()
        )
        self.stdout.write(self.style.SUCCESS(f"Tenant {slug} is ready: {site_url(slug)}"))
        self.stdout.write(f"  administrator: {made.admin_username}")
        self.stdout.write(f"  password:      {made.admin_password}")
        self.stdout.write("  This password is shown once and stored only as a hash: keep it now.")

    def do_list(self, **_):
        tenants = Tenant.objects.select_related("plan", "database_server").order_by("slug")
        rows = [("SLUG", "NAME", "PLAN", "STATE", "SERVER", "REPLICAS", "CREATED")]
        rows += [
            (
                t.slug,
                t.name,
                t.plan.code,
                t.state,
                t.database_server.name,
                ",".join(t.replica_zones) or "-",
                t.created_at.strftime("%Y-%m-%d %H:%M"),
            )
            for t in tenants
        ]
        write_table(self.stdout, rows)
        if len(rows) == 1:
            self.stdout.write("(no tenants)")

    def do_suspend(self, slug, **_):
        lifecycle.suspend(actions.get_tenant(slug), by=Operator.current())
        self.stdout.write(f"Tenant {slug} suspended: its site answers 503.")

    def do_resume(self, slug, **_):
        lifecycle.resume(actions.get_tenant(slug), by=Operator.current())
        self.stdout.write(f"Tenant {slug} resumed.")

    def do_replicas(self, slug, zones, none, **_):
        if bool(zones) == bool(none):
            raise actions.TenantError("give the zones (--zone Z, repeated), or --none")
        tenant = actions.get_tenant(slug)
        lifecycle.set_replicas(tenant, zones, by=Operator.current())
        where = ", ".join(tenant.replica_zones) or "none"
        self.stdout.write(f"Tenant {slug}: extra read replicas in {where}.")

    def do_drop(self, slug, yes, **_):
        tenant = actions.get_tenant(slug)
        if not yes:
            if not sys.stdin.isatty():
                raise actions.TenantError("refusing to drop without confirmation: add --yes")
            answer = input(f"Drop tenant {slug} and ALL its data? Type its slug to confirm: ")
            if answer.strip() != slug:
                raise actions.TenantError("not confirmed; nothing dropped")
        lifecycle.drop(tenant, by=Operator.current())
        self.stdout.write(f"Tenant {slug} dropped.")

    def do_plan(self, slug, plan, **_):
        lifecycle.change_plan(actions.get_tenant(slug), plan, by=Operator.current())
        self.stdout.write(f"Tenant {slug} is on the {plan} plan.")

    def do_migrate(self, slugs, all, jobs, **_):
        if bool(slugs) == bool(all):
            raise actions.TenantError("name tenants to migrate, or --all (not both)")
        if jobs < 1:
            raise actions.TenantError("--jobs must be at least 1")
        tenants = (
            list(
                Tenant.objects.exclude(state=Tenant.PROVISIONING).select_related("database_server")
            )
            if all
            else [actions.get_tenant(slug) for slug in slugs]
        )
        failed, changed = [], 0
        started = time.monotonic()
        for number, (slug, outcome, error) in enumerate(migrate_each(tenants, jobs), 1):
            prefix = f"[{number}/{len(tenants)}] {slug}"
            if error:  # keep going: one broken tenant must not stop the rest
                failed.append(slug)
                self.stderr.write(f"{prefix}: FAILED: {error}")
            elif outcome:
                changed += 1
                self.stdout.write(f"{prefix}: migrated")
            else:
                self.stdout.write(f"{prefix}: up to date")
        self.stdout.write(
            f"{len(tenants)} tenant(s) in {time.monotonic() - started:.1f} s: {changed} "
            f"migrated, {len(tenants) - changed - len(failed)} already up to date"
        )
        if failed:
            raise actions.TenantError(
                f"{len(failed)} of {len(tenants)} tenants failed to migrate: {', '.join(failed)}; "
                "fix and re-run (tenants already migrated are skipped quickly)"
            )
