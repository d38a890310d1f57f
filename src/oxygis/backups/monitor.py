"""Monitoring (C8): is every database backed up in its window, is every site reachable
and writable, do stored copies still match; plus the weekly restore test."""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.migrations.recorder import MigrationRecorder
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from oxygis.tenancy.context import CATALOG

from . import alerts, restore
from .models import Backup, BackupCopy, Restore, WorkerHeartbeat
from .sites import SiteError
from .swaps import TEST_INTERRUPTED
from .targets import Target, all_targets, last_good, latest_by_target
from .verify import verify_backup

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
    last_good_at: datetime | None
    overdue: bool

    @property
    def age(self) -> timedelta | None:
        return None if self.last_good_at is None else timezone.now() - self.last_good_at


FIRST_BACKUP_WITHIN = timedelta(hours=1)  # a new tenant is backed up within the hour


def statuses(targets: list[Target], now: datetime | None = None) -> list[TargetStatus]:
    """Each database's last good backup and whether it is overdue: one grouped query."""
    now = now or timezone.now()
    good = latest_by_target((Backup.GOOD,))
    window = timedelta(hours=settings.BACKUP_WINDOW_HOURS)
    born_catalog = None
    result = []
    for target in targets:
        last = good.get(target.key)
        if last is None:
            if target.tenant is not None:
                born = target.tenant.created_at
            else:
                born = born_catalog = born_catalog or _catalog_born()
            overdue = now - born > FIRST_BACKUP_WITHIN
        else:
            overdue = now - last > window
        result.append(TargetStatus(target, last, overdue))
    return result


def target_status(target: Target, now: datetime | None = None) -> TargetStatus:
    return statuses([target], now)[0]


def check_windows(now: datetime | None = None, targets=None) -> list[TargetStatus]:
    """Alert on each database with no good backup within BACKUP_WINDOW_HOURS (or an hour
    after its creation); resolve the others' alerts. A few queries, whatever the number
    of databases: only the alerts that change cost one each."""
    found = statuses(targets if targets is not None else all_targets(), now)
    prefix = "no-good-backup:"
    open_keys = set(
        alerts.open_alerts().filter(key__startswith=prefix).values_list("key", flat=True)
    )
    overdue = {f"{prefix}{s.target.key}": s for s in found if s.overdue}
    for key, status in overdue.items():
        if key in open_keys:
            continue  # open already: its e-mail went out
        when = f"since {status.last_good_at:%Y-%m-%d %H:%M} UTC" if status.last_good_at else "ever"
        window = (
            f"{settings.BACKUP_WINDOW_HOURS} hours"
            if status.last_good_at
            else "an hour of its creation"
        )
        alerts.raise_alert(
            key, f"{status.target.what} has no good backup within {window} (none {when})"
        )
    alerts.open_alerts().filter(key__in=open_keys & set(overdue)).update(
        last_seen_at=timezone.now()
    )
    for key in open_keys - set(overdue):
        alerts.resolve_alert(key)
    return found


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
    # A test whose process was killed does not count: it is run again.
    return not (
        Restore.objects.filter(mode=Restore.TEST, requested_at__gte=now - RESTORE_TEST_EVERY)
        .exclude(state=Restore.FAILED, detail__contains=TEST_INTERRUPTED)
        .exists()
    )


def run_restore_tests(sites=None, keys=None, sample: int = RESTORE_TEST_SAMPLE, progress=None):
    """Restore a random sample of the latest good backups into scratch databases."""
    candidates = [b for t in all_targets() if (b := last_good(t.key)) is not None]
    chosen = random.sample(candidates, min(sample, len(candidates)))  # nosec B311 # which backups to test-restore: a sample, not a secret
    results = []
    for backup in chosen:
        run = restore.request_restore(backup, Restore.TEST, "worker: weekly restore test")
        # A failure is recorded on the row and alerted on by perform(); go on with the rest.
        with contextlib.suppress(Exception):
            restore.perform(run, sites=sites, keys=keys, progress=progress)
        run.refresh_from_db()
        results.append(run)
    return results


# --- the worker itself and what the sites hold (checked each pass) -------------------------
def too_old(interval: int) -> timedelta:
    """How old a heartbeat may get: two passes, and a little slack for a slow one."""
    return timedelta(seconds=2 * interval + max(5, interval))


def stale_workers(now: datetime | None = None) -> tuple[list[WorkerHeartbeat], bool]:
    """(the heartbeats older than two passes, whether any worker is alive)."""
    now = now or timezone.now()
    beats = list(WorkerHeartbeat.objects.all())
    stale = [b for b in beats if now - b.beat_at > too_old(b.interval)]
    return stale, len(stale) < len(beats)


def check_workers(now: datetime | None = None) -> bool:
    """Alert when no worker has beaten within two of its passes (or a worker's passes
    keep failing); True if a worker is alive and well."""
    now = now or timezone.now()
    stale, alive = stale_workers(now)
    failing = [
        b
        for b in WorkerHeartbeat.objects.filter(failing_since__isnull=False)
        if now - b.failing_since > too_old(b.interval)
    ]
    if WorkerHeartbeat.objects.exists() and not alive:
        last = max(b.beat_at for b in stale)
        alerts.raise_alert(
            "worker-heartbeat",
            f"no backup worker has reported since {last:%Y-%m-%d %H:%M:%S} UTC: backups, "
            "restores and monitoring are not running",
        )
    else:
        alerts.resolve_alert("worker-heartbeat")
    for beat in failing:
        alerts.raise_alert(
            f"worker-failing:{beat.holder}",
            f"the backup worker {beat.holder} fails its passes since "
            f"{beat.failing_since:%Y-%m-%d %H:%M:%S} UTC: {beat.last_error}",
        )
    healthy = {b.holder for b in WorkerHeartbeat.objects.filter(failing_since__isnull=True)}
    for alert in alerts.open_alerts().filter(key__startswith="worker-failing:"):
        if alert.key.removeprefix("worker-failing:") in healthy:
            alerts.resolve_alert(alert.key)
    # Heartbeats of workers gone for a day are history, not workers.
    WorkerHeartbeat.objects.filter(beat_at__lt=now - timedelta(days=1)).delete()
    return alive and not failing


def check_degraded(interval: int, now: datetime | None = None) -> list[Backup]:
    """Alert on each backup still degraded a pass after it was found so (re-syncs have
    not caught up); resolve the alerts of those that are not any more."""
    now = now or timezone.now()
    late = list(
        Backup.objects.filter(state=Backup.DEGRADED, finished_at__lt=now - too_old(interval) / 2)
    )
    for backup in late:
        verified = backup.copies.filter(state=BackupCopy.VERIFIED).count()
        alerts.raise_alert(
            f"degraded:{backup.id.hex}",
            f"backup {backup.short_id} of {backup.label} is verified on {verified} site(s) "
            f"only, under the {settings.BACKUP_MIN_GOOD_SITES} it needs, and re-syncs have not "
            "caught up",
        )
    still = {b.id.hex for b in Backup.objects.filter(state=Backup.DEGRADED)}
    for alert in alerts.open_alerts().filter(key__startswith="degraded:"):
        if alert.key.removeprefix("degraded:") not in still:
            alerts.resolve_alert(alert.key)
    return late


def check_site_contents(sites) -> dict[str, list[str]]:
    """List each site once and compare with the copies the catalog says it holds: a copy
    whose objects are gone is marked missing (its backup degrades, and is re-synced)
    and alerted on, at the next pass, not at the weekly re-read."""
    from .manifest import DUMP_OBJECT, MANIFEST_OBJECT
    from .verify import settle

    expected: dict[str, list[BackupCopy]] = {}
    for copy in BackupCopy.objects.filter(
        state=BackupCopy.VERIFIED, backup__state__in=(Backup.GOOD, Backup.DEGRADED)
    ).select_related("backup"):
        expected.setdefault(copy.site, []).append(copy)
    missing: dict[str, list[str]] = {}
    for site in sites:
        key = f"site-objects:{site.name}"
        try:
            present = site.paths()
        except SiteError:
            continue  # the write/read probe alerts on a site that cannot be reached
        gone = [
            copy
            for copy in expected.get(site.name, [])
            if f"{copy.backup.prefix}/{DUMP_OBJECT}" not in present
            or f"{copy.backup.prefix}/{MANIFEST_OBJECT}" not in present
        ]
        for copy in gone:
            BackupCopy.objects.filter(pk=copy.pk).update(
                state=BackupCopy.MISSING,
                error="its objects are gone from the site",
                verified_at=timezone.now(),
            )
            settle(copy.backup)
        if gone:
            missing[site.name] = [c.backup.short_id for c in gone]
            alerts.raise_alert(
                key,
                f"backup site {site.name} holds {len(gone)} backup(s) fewer than the catalog "
                f"expects ({', '.join(missing[site.name][:5])}"
                f"{', ...' if len(gone) > 5 else ''}): marked missing, to be re-synced",
            )
        else:
            alerts.resolve_alert(key)
    return missing


SPACE_MARGIN = 1.25  # the next backup may be somewhat larger than the last one


def check_site_space(sites) -> dict[str, int]:
    """Alert on each file site with less free space than the next backup needs (the
    largest latest backup of any database, with a margin)."""
    latest: dict[str, int] = {}
    for target, size in (
        Backup.objects.filter(state__in=(Backup.GOOD, Backup.DEGRADED))
        .order_by("target", "-started_at")
        .values_list("target", "stored_bytes")
    ):
        latest.setdefault(target, size)
    need = int(max(latest.values(), default=0) * SPACE_MARGIN) + (1 << 20)
    short = {}
    for site in sites:
        key = f"site-space:{site.name}"
        free = site.free_bytes()
        if free is not None and free < need:
            short[site.name] = free
            alerts.raise_alert(
                key,
                f"backup site {site.name} has {filesizeformat(free)} free, less than the "
                f"next backup needs (about {filesizeformat(need)})",
            )
        else:
            alerts.resolve_alert(key)
    return short
