"""The backup worker: schedule, re-sync, retention, queued restores, monitoring.

Every decision is derived from the catalog each tick, so a worker restarted (or a second
one started) simply carries on; leases keep two from working on one database at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from oxygis.audit import accesslog
from oxygis.core import limiter
from oxygis.tenancy import replication

from . import alerts, credentials, digests, drill, monitor, pitr, restore, swaps
from .keys import configured_keys
from .leases import HOST, LeaseHeld
from .models import Backup, Restore, WorkerHeartbeat
from .pipeline import run_backup
from .retention import prune
from .sites import configured_sites, one_line
from .targets import Target, all_targets, latest_by_target
from .verify import resync

log = logging.getLogger("oxygis.backups.worker")

# Jobs that apps above this one run at every pass, each ``job(now)``, safe to run twice
# (imports only point down: they register here, from their AppConfig.ready).
# A long job takes ``progress=``, a callable to call now and then: the heartbeat goes on
# while it works, so that the supervisor does not take it for hung.
EXTRA_JOBS: dict[str, tuple[object, bool]] = {}


def register_job(name: str, job, *, long: bool = False) -> None:
    EXTRA_JOBS[name] = (job, long)


# Set in a supervised worker's environment: its supervisor's pid.
SUPERVISOR_ENV = "OXYGIS_WORKER_SUPERVISOR"
RETRY_AFTER = timedelta(minutes=10)
SITE_PROBE_EVERY = timedelta(minutes=10)


def slot_offset(key: str) -> timedelta:
    """Each database's daily start time, spread over the day by a hash of its key."""
    return timedelta(seconds=int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 86400)


def _last_slot(target: Target, now: datetime) -> datetime:
    slot = now.replace(hour=0, minute=0, second=0, microsecond=0) + slot_offset(target.key)
    return slot - timedelta(days=1) if slot > now else slot


def due_targets(targets: list[Target], now: datetime) -> list[Target]:
    """The databases to back up now, in two grouped queries whatever their number: due if
    no backup (good or degraded) since its latest daily slot, or never; not while one
    runs, nor within RETRY_AFTER of a failure."""
    busy = set(
        Backup.objects.filter(
            started_at__gte=now - RETRY_AFTER, state__in=(Backup.RUNNING, Backup.FAILED)
        ).values_list("target", flat=True)
    )
    last = latest_by_target((Backup.GOOD, Backup.DEGRADED))
    return [
        t
        for t in targets
        if t.key not in busy and (t.key not in last or last[t.key] < _last_slot(t, now))
    ]


def is_due(target: Target, now: datetime) -> bool:
    return bool(due_targets([target], now))


def prune_slice(targets: list[Target], now: datetime, interval: int) -> list[Target]:
    """The targets to prune this pass: each about once a day, spread over the passes (by
    the hash of its key), so that a pass costs the same with 10 or 10,000 tenants."""
    passes_a_day = max(1, 86400 // max(1, interval))
    current = int(now.timestamp()) // max(1, interval) % passes_a_day
    return [t for t in targets if int(slot_offset(t.key).total_seconds()) % passes_a_day == current]


class Heartbeat:
    """This worker's row in WorkerHeartbeat: written at each pass and, throttled, while
    long work runs (progress callbacks), so that a worker is seen alive or missing."""

    EVERY = timedelta(seconds=10)

    def __init__(self, interval: int):
        self.holder = f"{HOST}:{os.getpid()}"
        self.interval = interval
        self._last: datetime | None = None

    def beat(self, *, passed: bool = False, error: str | None = None, force: bool = False):
        now = timezone.now()
        every = min(self.EVERY, timedelta(seconds=self.interval))
        if not (force or passed or error) and self._last and now - self._last < every:
            return
        row, _ = WorkerHeartbeat.objects.get_or_create(
            holder=self.holder,
            defaults={"host": HOST, "pid": os.getpid(), "interval": self.interval},
        )
        row.beat_at, row.interval = now, self.interval
        if passed:
            row.passes += 1
            row.failing_since, row.last_error = None, ""
        if error:
            row.failing_since = row.failing_since or now
            row.last_error = error[:1000]
        row.save()
        self._last = now

    def gone(self) -> None:
        WorkerHeartbeat.objects.filter(holder=self.holder).delete()


class Worker:
    def __init__(self, *, sites=None, keys=None, restore_tests: bool = True, interval=None):
        self._sites = sites
        self._keys = keys
        self.restore_tests = restore_tests
        self.interval = interval or settings.WORKER_INTERVAL
        self.heartbeat = Heartbeat(self.interval)
        self._last_probe: datetime | None = None
        self.stopping = False

    @property
    def sites(self):
        return configured_sites() if self._sites is None else self._sites

    @property
    def keys(self):
        return self._keys or configured_keys()

    def _step(self, name: str, func, *args, **kwargs):
        self._progress(name)
        try:
            return func(*args, **kwargs)
        except LeaseHeld:
            return None
        except Exception as exc:  # one failing step must not stop the others
            log.error("worker step %s failed: %s", name, exc)
            return None

    def _progress(self, text: str) -> None:
        """Long work (a backup, a restore) keeps the heartbeat going."""
        with contextlib.suppress(Exception):
            self.heartbeat.beat()

    def tick(self, now: datetime | None = None) -> None:
        """One pass. Raises only when the catalog itself cannot be used (the caller
        retries with backoff); each step's own failure is logged and the pass goes on."""
        now = now or timezone.now()
        close_old_connections()
        self.heartbeat.beat(force=True)
        sites = self.sites
        targets = all_targets()
        # A restore whose process died is finished or undone before anything else.
        self._step("interrupted restores", swaps.recover_interrupted)
        self._step("scratch files", sweep_scratch)
        self._step("scratch clusters", pitr.sweep_scratch)
        backed_up = []
        for target in self._step("due", due_targets, targets, now) or []:
            log.info("backing up %s", target.what)
            backup = self._step("backup", self._backup, target, sites)
            if backup is not None:
                backed_up.append(target)
                log.info("backup of %s: %s (%s)", target.what, backup.state, backup.short_id)
        self._step("site contents", monitor.check_site_contents, sites)
        # Every degraded backup is re-synced before anything of its target is pruned.
        for backup in Backup.objects.filter(state=Backup.DEGRADED).order_by("started_at"):
            self._step("re-sync", resync, backup, sites, self.keys)
        self.run_queued_restores(sites)
        # Pruning: what was just backed up, and a slice of the rest (each once a day).
        pruned = {t.key: t for t in [*backed_up, *prune_slice(targets, now, self.interval)]}
        for target in pruned.values():
            self._step("prune", prune, target.key, target.daily_days, target.weekly_weeks, sites)
        if self._last_probe is None or now - self._last_probe >= SITE_PROBE_EVERY:
            self._step("site check", monitor.check_sites, sites)
            self._last_probe = now
        self._step("site space", monitor.check_site_space, sites)
        self._step("window check", monitor.check_windows, now)
        self._step("replication", replication.check_replication)
        self._step("WAL archives", pitr.check_archives)
        self._step("base backups", pitr.run_due_backups, now)
        self._step("degraded check", monitor.check_degraded, self.interval)
        self._step("re-verify", monitor.reverify_oldest, sites, self.keys, now)
        if self.restore_tests and monitor.restore_test_due(now):
            self._step("restore test", monitor.run_restore_tests, sites, self.keys)
        if self.restore_tests and drill.drill_due(now):
            self._step("DR drill", drill.run_drill)
        self._step("kept databases", swaps.expire_kept_databases, now)
        # The audit trails (C17): signed each hour, pruned a whole signed segment at a time.
        self._step("audit seals", digests.seal_due, now, keys=self.keys, sites=sites)
        for target in pruned.values():
            self._step("audit retention", digests.prune, target, now, keys=self.keys, sites=sites)
        self._step("suspicious patterns", alerts.resolve_quiet_suspicions, now)
        self._step("access log retention", accesslog.prune_files, now)
        self._step("limiter buckets", limiter.prune, now)
        self._step("credential events", credentials.prune_events, now)
        # Jobs of the layers above (the platform's: access grants that expired, C14).
        for name, (job, long) in EXTRA_JOBS.items():
            self._step(name, job, now, **({"progress": self._progress} if long else {}))
        self.heartbeat.beat(passed=True)
        alerts.resolve_alert(f"worker-restarted:{HOST}")
        self._step("worker check", monitor.check_workers)
        close_old_connections()

    def run_queued_restores(self, sites=None) -> list[Restore]:
        """Restores asked for on a tenant's backups page, oldest first."""
        done = []
        for queued in Restore.objects.filter(state=Restore.QUEUED).order_by("requested_at")[:3]:
            self._step(
                "restore",
                restore.perform,
                queued,
                sites=sites or self.sites,
                keys=self.keys,
                progress=self._progress,
            )
            done.append(queued)
        return done

    def _backup(self, target, sites):
        # The backup carries the chain as signed a moment before (C17).
        self._step("audit seal", digests.seal, target, keys=self.keys, sites=sites)
        return run_backup(
            target, sites=sites, keys=self.keys, scheduled=True, progress=self._progress
        )

    def run_forever(self) -> None:
        """Pass after pass until stopped. A pass that fails (the catalog unreachable, say)
        is logged once per run of failures and retried after 1, 2, 4... seconds, up to the
        interval; the worker never dies of it. Supervised, it ends with its supervisor."""
        log.info("backup worker started (every %s s)", self.interval)
        supervisor = int(os.environ.get(SUPERVISOR_ENV) or 0)
        failures = 0
        while not self.stopping:
            started = time.monotonic()
            try:
                self.tick()
            except Exception as exc:
                failures += 1
                reason = one_line(exc)
                if failures == 1:
                    log.error("worker pass failed, retrying until it works: %s", reason)
                with contextlib.suppress(Exception):
                    self.heartbeat.beat(error=reason)
                close_old_connections_quietly()
                wait = min(2 ** (failures - 1), self.interval)
            else:
                if failures:
                    log.warning("worker passes work again after %d failed one(s)", failures)
                failures = 0
                wait = max(1.0, self.interval - (time.monotonic() - started))
            deadline = time.monotonic() + wait
            while not self.stopping and time.monotonic() < deadline:
                if supervisor and os.getppid() != supervisor:
                    log.warning("the worker's supervisor is gone: stopping")
                    return
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


def close_old_connections_quietly() -> None:
    """After a failed pass, drop connections that may be broken (the next pass opens new)."""
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        with contextlib.suppress(Exception):
            connection.close()


def sweep_scratch() -> int:
    """Remove scratch files left by processes of this host that are gone (a backup or
    restore killed before it could clean up)."""
    from .dumps import scratch_files_of_the_dead

    removed = 0
    for path in scratch_files_of_the_dead():
        if "~drill-" in path.name:
            drill.sweep_dead(path)  # a killed DR drill: a folder, databases, a row
        elif path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed += 1
    if removed:
        log.info("removed %d scratch file(s) left by stopped processes", removed)
    return removed
