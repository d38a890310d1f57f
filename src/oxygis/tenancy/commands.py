"""The base of every command that works inside one tenant: ``--tenant SLUG``."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from .databases import tenant_context
from .models import Tenant
from .tenants import TenantError, get_tenant


class TenantCommand(BaseCommand):
    """Binds the tenant's database for the whole command (fail closed: no tenant, no run).

    Subclasses add their own arguments in ``add_tenant_arguments`` and find the tenant in
    ``self.tenant``.
    """

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, metavar="SLUG", help="the tenant")
        self.add_tenant_arguments(parser)

    def add_tenant_arguments(self, parser):
        pass

    def execute(self, *args, **options):
        try:
            tenant = get_tenant(options["tenant"])
        except TenantError as exc:
            raise CommandError(str(exc), returncode=2) from None
        if tenant.state != Tenant.ACTIVE:
            raise CommandError(f"tenant {tenant.slug} is {tenant.state}", returncode=2)
        self.tenant = tenant
        with tenant_context(tenant):
            return super().execute(*args, **options)


def write_table(stdout, rows: list[tuple[str, ...]]) -> None:
    """Rows (the first one the header) in aligned columns, as `tenant list` prints them."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        stdout.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
