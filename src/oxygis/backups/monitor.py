"""Monitoring (C8): is every database backed up in its window, is every site reachable
and writable, do stored copies still match; plus the weekly restore test."""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from oxygis.tenancy.context import CATALOG

from . import alerts, restore
from .models import Backup, Restore
from .service import Target, all_targets, last_good, verify_backup
from .sites import SiteError

RESTORE_TEST_EVERY = timedelta(days=7)
RESTORE_TEST_SAMPLE = 3
REVERIFY_AFTER = timedelta(days=7)


def _catalog_born() -> datetime:
    row = (
        MigrationRecorder.Migration.objects.using(CATALOG)
        .filter(app="tenancy", name="0001_initial")
        .first()
    )
    return row.applied if row is not None else timezone.now()


@dataclass
class TargetStatus:
    target: Target
    last_good: Backup | None
    newest: Backup | None
    overdue: bool

    @property
    def age(self) -> timedelta | None:
        return None if self.last_good is None else timezone.now() - self.last_good.started_at


def target_status(target: Target, now: datetime | None = None) -> TargetStatus:
    now = now or timezone.now()
    good = last_good(target.key)
    newest = Backup.objects.filter(target=target.key).first()
    born = target.tenant.created_at if target.tenant is not None else _catalog_born()
    since = good.started_at if good is not None else born
    overdue = now - since > timedelta(hours=settings.BACKUP_WINDOW_HOURS)
    return TargetStatus(target, good, newest, overdue)


def check_windows(now: datetime | None = None) -> list[TargetStatus]:
    """Alert on each database with no good backup within BACKUP_WINDOW_HOURS."""
    statuses = [target_status(t, now) for t in all_targets()]
    for status in statuses:
        key = f"no-good-backup:{status.target.key}"
        if status.overdue:
            when = (
                f"since {status.last_good.started_at:%Y-%m-%d %H:%M} UTC"
                if status.last_good
                else "ever"
            )
            alerts.raise_alert(
                key,
                f"{status.target.what} has no good backup within "
                f"{settings.BACKUP_WINDOW_HOURS} hours (none {when})",
            )
        else:
            alerts.resolve_alert(key)
    return statuses


def check_sites(sites) -> dict[str, str]:
    """Write, read back and delete a probe on each site; alert on each that fails."""
    failed = {}
    for site in sites:
        key = f"site:{site.name}"
        try:
            site.probe()
        except SiteError as exc:
            failed[site.name] = str(exc)
            alerts.raise_alert(key, f"backup site cannot be written or read: {exc}")
        else:
            alerts.resolve_alert(key)
    return failed


def reverify_oldest(sites, keys=None, now: datetime | None = None) -> Backup | None:
    """Re-read the retained backup checked longest ago (if over a week): a flipped byte or
    a forged manifest at rest is found and alerted on, not discovered at restore time."""
    now = now or timezone.now()
    candidates = (
        Backup.objects.restorable().filter(copies__verified_at__lt=now - REVERIFY_AFTER).distinct()
    )
    backup = candidates.order_by("copies__verified_at").first()
    if backup is None:
        return None
    verify_backup(backup, sites, keys)
    return backup


def restore_test_due(now: datetime | None = None) -> bool:
    now = now or timezone.now()
    return not Restore.objects.filter(
        mode=Restore.TEST, requested_at__gte=now - RESTORE_TEST_EVERY
    ).exists()


def run_restore_tests(sites=None, keys=None, sample: int = RESTORE_TEST_SAMPLE, progress=None):
    """Restore a random sample of the latest good backups into scratch databases."""
    candidates = [b for t in all_targets() if (b := last_good(t.key)) is not None]
    chosen = random.sample(candidates, min(sample, len(candidates)))
    results = []
    for backup in chosen:
        run = restore.request_restore(backup, Restore.TEST, "worker: weekly restore test")
        # A failure is recorded on the row and alerted on by perform(); go on with the rest.
        with contextlib.suppress(Exception):
            restore.perform(run, sites=sites, keys=keys, progress=progress)
        run.refresh_from_db()
        results.append(run)
    return results
