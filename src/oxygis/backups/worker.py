"""The backup worker: schedule, re-sync, retention, queued restores, monitoring.

Every decision is derived from the catalog each tick, so a worker restarted (or a second
one started) simply carries on; leases keep two from working on one database at once.
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import datetime, timedelta

from django.db import close_old_connections
from django.utils import timezone

from oxygis.core import limiter

from . import credentials, monitor, restore
from .keys import configured_keys
from .leases import LeaseHeld
from .models import Backup, Restore
from .service import Target, all_targets, prune, resync, run_backup
from .sites import configured_sites

log = logging.getLogger("oxygis.backups.worker")

RETRY_AFTER = timedelta(minutes=10)
SITE_PROBE_EVERY = timedelta(minutes=10)


def slot_offset(key: str) -> timedelta:
    """Each database's daily start time, spread over the day by a hash of its key."""
    return timedelta(seconds=int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 86400)


def is_due(target: Target, now: datetime) -> bool:
    """Due if no backup (good or degraded) since the latest daily slot, or never; not
    while one runs, nor within RETRY_AFTER of a failure."""
    recent = Backup.objects.filter(target=target.key, started_at__gte=now - RETRY_AFTER)
    if recent.filter(state__in=(Backup.RUNNING, Backup.FAILED)).exists():
        return False
    last = (
        Backup.objects.filter(target=target.key, state__in=(Backup.GOOD, Backup.DEGRADED))
        .order_by("-started_at")
        .first()
    )
    if last is None:
        return True
    slot = now.replace(hour=0, minute=0, second=0, microsecond=0) + slot_offset(target.key)
    if slot > now:
        slot -= timedelta(days=1)
    return last.started_at < slot


class Worker:
    def __init__(self, *, sites=None, keys=None, restore_tests: bool = True):
        self._sites = sites
        self._keys = keys
        self.restore_tests = restore_tests
        self._last_probe: datetime | None = None
        self.stopping = False

    @property
    def sites(self):
        return configured_sites() if self._sites is None else self._sites

    @property
    def keys(self):
        return self._keys or configured_keys()

    def _step(self, name: str, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except LeaseHeld:
            return None
        except Exception as exc:  # one failing step must not stop the others
            log.error("worker step %s failed: %s", name, exc)
            return None

    def tick(self, now: datetime | None = None) -> None:
        now = now or timezone.now()
        close_old_connections()
        sites = self.sites
        targets = all_targets()
        for target in targets:
            if is_due(target, now):
                log.info("backing up %s", target.what)
                backup = self._step("backup", self._backup, target, sites)
                if backup is not None:
                    log.info("backup of %s: %s (%s)", target.what, backup.state, backup.short_id)
        for backup in Backup.objects.filter(state=Backup.DEGRADED)[:5]:
            self._step("re-sync", resync, backup, sites, self.keys)
        self.run_queued_restores(sites)
        for target in targets:
            self._step("prune", prune, target.key, target.daily_days, target.weekly_weeks, sites)
        if self._last_probe is None or now - self._last_probe >= SITE_PROBE_EVERY:
            self._step("site check", monitor.check_sites, sites)
            self._last_probe = now
        self._step("window check", monitor.check_windows, now)
        self._step("re-verify", monitor.reverify_oldest, sites, self.keys, now)
        if self.restore_tests and monitor.restore_test_due(now):
            self._step("restore test", monitor.run_restore_tests, sites, self.keys)
        self._step("limiter buckets", limiter.prune, now)
        self._step("credential events", credentials.prune_events, now)
        close_old_connections()

    def run_queued_restores(self, sites=None) -> list[Restore]:
        """Restores asked for on a tenant's backups page, oldest first."""
        done = []
        for queued in Restore.objects.filter(state=Restore.QUEUED).order_by("requested_at")[:3]:
            self._step(
                "restore", restore.perform, queued, sites=sites or self.sites, keys=self.keys
            )
            done.append(queued)
        return done

    def _backup(self, target, sites):
        return run_backup(target, sites=sites, keys=self.keys, scheduled=True)

    def run_forever(self, interval: int) -> None:
        log.info("backup worker started (every %s s)", interval)
        while not self.stopping:
            started = time.monotonic()
            self.tick()
            time.sleep(max(1.0, interval - (time.monotonic() - started)))
