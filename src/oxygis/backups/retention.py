"""Retention (C1): what a plan keeps, and pruning only what a newer good backup
replaces, never while any backup of the database is degraded."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.utils import timezone

from oxygis.audit.events import record
from oxygis.tenancy.context import CATALOG, using_database

from . import alerts
from .models import Backup
from .sites import SiteError, configured_sites

log = logging.getLogger("oxygis.backups")


def retained(backups: list[Backup], daily_days: int, weekly_weeks: int, now: datetime) -> set:
    """Ids kept by the plan: every good backup of the last ``daily_days`` days, the newest
    good one of each ISO week for ``weekly_weeks`` weeks, and always the newest good one."""
    good = sorted((b for b in backups if b.state == Backup.GOOD), key=lambda b: b.started_at)
    keep = {b.id for b in good if b.started_at >= now - timedelta(days=daily_days)}
    weeks: dict[tuple[int, int], Backup] = {}
    for backup in good:
        if backup.started_at >= now - timedelta(weeks=weekly_weeks):
            weeks[backup.started_at.isocalendar()[:2]] = backup  # the newest wins
    keep |= {b.id for b in weeks.values()}
    if good:
        keep.add(good[-1].id)
    return keep


def prune(target_key: str, daily_days: int, weekly_weeks: int, sites=None, now=None) -> list:
    """Delete what the plan no longer keeps, and only what a newer good backup replaces.

    Nothing is pruned while any backup of the target is degraded: a site that lost its
    copies makes backups degraded, and they are all re-synced first (a backup with a
    verified copy somewhere is never lost because copies went missing elsewhere). Every
    deletion is logged and audited in the platform's log."""
    sites = configured_sites() if sites is None else sites
    now = now or timezone.now()
    backups = list(Backup.objects.filter(target=target_key).exclude(state=Backup.RUNNING))
    degraded = [b for b in backups if b.state == Backup.DEGRADED]
    if degraded:
        log.info(
            "pruning of %s waits: %d degraded backup(s) are re-synced first",
            backups[0].label,
            len(degraded),
        )
        return []
    good = [b for b in backups if b.state == Backup.GOOD]
    if not good:
        return []  # nothing replaces anything yet: keep every copy we have
    newest_good = max(b.started_at for b in good)
    keep = retained(backups, daily_days, weekly_weeks, now)
    pruned = []
    for backup in backups:
        if backup.id in keep or backup.started_at >= newest_good:
            continue
        if backup.restores.filter(state__in=("queued", "running")).exists():
            continue
        try:
            for site in sites:
                site.delete_prefix(backup.prefix)
        except SiteError as exc:
            log.warning("prune of %s deferred: %s", backup.short_id, exc)
            continue
        log.info(
            "pruned backup %s of %s taken %s (%s): the plan keeps it no more",
            backup.short_id,
            backup.label,
            f"{backup.started_at:%Y-%m-%d %H:%M}",
            backup.state,
        )
        with using_database(CATALOG):
            record(
                "backup.pruned",
                target=backup.label,
                backup=backup.id.hex,
                taken=backup.started_at.isoformat(),
                state=backup.state,
            )
        alerts.resolve_alerts_about(backup.id.hex)
        pruned.append(backup.short_id)
        backup.delete()
    return pruned
