"""What is backed up: the catalog and each tenant's database (a ``Target``), and how to
find a database's backups."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

from django.conf import settings
from django.db.models import Max

from oxygis.tenancy.engines import engine_for
from oxygis.tenancy.models import Plan, Tenant

from .dumps import DatabaseRef
from .errors import BackupError
from .models import CATALOG_TARGET, Backup

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Target:
    """A database that is backed up: the catalog, or one tenant's. Where it is (``ref``,
    which unseals a password) is worked out only when it is needed, not for every
    tenant at every pass."""

    key: str
    label: str
    tenant: Tenant | None
    daily_days: int
    weekly_weeks: int

    @property
    def what(self) -> str:
        return "the catalog" if self.tenant is None else f"tenant {self.label}"

    @cached_property
    def ref(self) -> DatabaseRef:
        if self.tenant is None:
            return DatabaseRef.from_entry(settings.DATABASES["default"])
        return DatabaseRef.from_entry(
            engine_for(self.tenant.database_server).tenant_entry(self.tenant)
        )


def catalog_target() -> Target:
    default = Plan._meta.get_field("backup_daily_days").default
    weekly = Plan._meta.get_field("backup_weekly_weeks").default
    return Target(CATALOG_TARGET, CATALOG_TARGET, None, default, weekly)


def tenant_target(tenant: Tenant) -> Target:
    return Target(
        tenant.id.hex,
        tenant.slug,
        tenant,
        tenant.plan.backup_daily_days,
        tenant.plan.backup_weekly_weeks,
    )


def all_targets() -> list[Target]:
    """The catalog and every active or suspended tenant (suspended data is still data)."""
    tenants = Tenant.objects.filter(state__in=Tenant.EXISTING).select_related(
        "plan", "database_server"
    )
    return [catalog_target(), *(tenant_target(t) for t in tenants)]


def latest_by_target(states) -> dict[str, datetime]:
    """When each database's latest backup in ``states`` started: one grouped query."""
    return dict(
        Backup.objects.filter(state__in=states)
        .values("target")
        .annotate(latest=Max("started_at"))
        .values_list("target", "latest")
    )


def find_backup(target_key: str, backup_id: str | None) -> Backup:
    """A backup by id (or a unique prefix of it); by default the newest good one."""
    backups = Backup.objects.filter(target=target_key)
    if backup_id is None:
        backup = backups.good().first()
        if backup is None:
            raise BackupError("there is no good backup to restore")
        return backup
    wanted = backup_id.replace("-", "").lower()
    if not wanted or any(c not in "0123456789abcdef" for c in wanted):
        raise BackupError(f"{backup_id!r} is not a backup id")
    matches = [b for b in backups if b.id.hex.startswith(wanted)]
    if len(matches) != 1:
        raise BackupError(
            f"no backup {backup_id}" if not matches else f"backup id {backup_id} is ambiguous"
        )
    return matches[0]


def last_good(target_key: str) -> Backup | None:
    return Backup.objects.filter(target=target_key).good().first()
