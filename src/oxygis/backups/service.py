"""Backups: run, verify, re-sync, prune, list (the actions behind the CLI and the worker).

A backup streams in one pass: dump -> zstd -> age (to the recipients' public keys) ->
every site at once, hashed on the way. Then every copy is read back and checked against
that SHA-256, and a signed manifest is written beside it. It is ``good`` only when
verified on at least BACKUP_MIN_GOOD_SITES sites (C3); with fewer it is ``degraded`` and
a later re-sync copies it to the sites that miss it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

import pyrage
import zstandard
from django.conf import settings
from django.db.models import Max
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

import oxygis
from oxygis.audit.events import record
from oxygis.tenancy.context import CATALOG, using_database
from oxygis.tenancy.engines import engine_for
from oxygis.tenancy.models import Plan, Tenant

from . import alerts
from .dumps import DatabaseRef, open_dump
from .errors import BackupError
from .keys import configured_keys
from .leases import LeaseGuard
from .manifest import FORMAT, ManifestError, open_manifest, seal_manifest
from .models import CATALOG_TARGET, Backup, BackupCopy
from .sites import Site, SiteError, configured_sites, one_line
from .streams import CountingReader, SiteTee, sha256_of

log = logging.getLogger("oxygis.backups")

DUMP_OBJECT = "dump.age"
MANIFEST_OBJECT = "manifest.json"
ZSTD_LEVEL = 3


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


# --- run -----------------------------------------------------------------------------
Progress = Callable[[str], None]


def fail_interrupted(target: Target, sites: list[Site], keys=None) -> int:
    """Settle the backups of ``target`` left running by a process that died (the caller
    holds the lease, so none is really running).

    One that finished on the sites (its signed manifest there and data matching it) is
    verified and kept: that is what a catalog restored from its own backup shows, since
    the catalog's dump was taken while that very backup was running. The others are
    marked failed and their objects removed."""
    stale = list(Backup.objects.filter(target=target.key, state=Backup.RUNNING))
    for backup in stale:
        if _complete_on_the_sites(backup, sites, keys or configured_keys()):
            log.warning(
                "backup %s of %s was left running but is whole on the sites: kept (%s)",
                backup.short_id,
                backup.label,
                backup.state,
            )
            continue
        for site in sites:
            try:
                site.delete_prefix(backup.prefix)
            except SiteError as exc:
                log.warning("could not clean interrupted backup %s: %s", backup.short_id, exc)
        Backup.objects.filter(pk=backup.pk, state=Backup.RUNNING).update(
            state=Backup.FAILED,
            finished_at=timezone.now(),
            error="interrupted: the process running it stopped before it was verified",
        )
    return len(stale)


def _complete_on_the_sites(backup: Backup, sites: list[Site], keys) -> bool:
    """Learn a backup's content from the first signed manifest found for it, then verify
    every copy against it; True if at least one copy verifies (the backup is settled)."""
    for site in sites:
        try:
            sealed = site.get(f"{backup.prefix}/{MANIFEST_OBJECT}")
            manifest = open_manifest(sealed, keys, expect_id=backup.id.hex, expect_sha256=None)
        except (SiteError, ManifestError):
            continue
        Backup.objects.filter(pk=backup.pk).update(
            sha256=manifest["sha256"],
            stored_bytes=manifest["stored_bytes"],
            dump_bytes=manifest["dump_bytes"],
            manifest=manifest,
        )
        backup.refresh_from_db()
        for each in sites:
            BackupCopy.objects.get_or_create(backup=backup, site=each.name)
            verify_copy(backup, each, keys)
        if backup.copies.filter(state=BackupCopy.VERIFIED).exists():
            settle(backup, finished=True)
            return True
        return False
    return False


def run_backup(
    target: Target,
    *,
    sites: list[Site] | None = None,
    keys=None,
    scheduled: bool = False,
    progress: Progress | None = None,
) -> Backup:
    """Back up ``target`` to every site. Raises LeaseHeld if one is already running."""
    sites = configured_sites() if sites is None else sites
    keys = keys or configured_keys()
    recipients = keys.age_recipients()
    with LeaseGuard(target.key, f"a backup of {target.what}") as lease:
        fail_interrupted(target, sites, keys)
        backup = Backup.objects.create(
            target=target.key,
            tenant=target.tenant,
            label=target.label,
            engine=target.ref.engine,
            database=target.ref.name,
            scheduled=scheduled,
            worker=lease.holder,
        )
        for site in sites:
            BackupCopy.objects.create(backup=backup, site=site.name)
        try:
            _write(backup, target, sites, keys, recipients, lease, progress)
        except BaseException as exc:
            # Whatever happened (a failed dump, SIGTERM, Ctrl-C), nothing half-made stays.
            message = one_line(exc) if isinstance(exc, Exception) else "interrupted"
            for site in sites:
                with contextlib.suppress(SiteError):
                    site.delete_prefix(backup.prefix)
            Backup.objects.filter(pk=backup.pk).update(
                state=Backup.FAILED, finished_at=timezone.now(), error=message
            )
            if isinstance(exc, Exception):
                alerts.raise_alert(
                    f"backup-failed:{target.key}", f"backup of {target.what} failed: {message}"
                )
            raise
        backup.refresh_from_db()
        if backup.state != Backup.FAILED:
            alerts.resolve_alert(f"backup-failed:{target.key}")
        return backup


def _write(backup, target, sites, keys, recipients, lease, progress) -> None:
    say = progress or (lambda text: None)
    path = f"{backup.prefix}/{DUMP_OBJECT}"
    writers, open_failures = {}, {}
    for site in sites:
        try:
            writers[site.name] = site.writer(path)
        except SiteError as exc:
            open_failures[site.name] = str(exc)

    def tick(count: int) -> None:
        lease.renew()
        say(f"{target.label}: {filesizeformat(count)} dumped")

    with open_dump(target.ref) as dump:
        source = CountingReader(dump.stream, tick)
        compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=1)
        tee = SiteTee(writers)
        with compressor.stream_reader(source, read_size=1 << 20, closefd=False) as compressed:
            pyrage.encrypt_io(compressed, tee, recipients)
        failures = {**open_failures, **tee.close_all()}
    snapshot = dump.snapshot
    sha256 = tee.sha256.hexdigest()
    say(
        f"{target.label}: {filesizeformat(source.count)} dumped, {filesizeformat(tee.count)} stored"
    )

    manifest = {
        "format": FORMAT,
        "backup_id": backup.id.hex,
        "target": target.key,
        "tenant": None
        if target.tenant is None
        else {
            "id": target.tenant.id.hex,
            "slug": target.tenant.slug,
            "name": target.tenant.name,
            "plan": target.tenant.plan.code,
        },
        "engine": target.ref.engine,
        "started_at": backup.started_at.isoformat(),
        "finished_at": timezone.now().isoformat(),
        "migrations": snapshot.migrations,
        "row_counts": snapshot.row_counts,
        "order_next_number": snapshot.order_next_number,
        "dump_bytes": source.count,
        "stored_bytes": tee.count,
        "sha256": sha256,
        "compression": f"zstd-{ZSTD_LEVEL}",
        "encryption": "age-x25519",
        "recipients": keys.recipient_fingerprints,
        "app_version": oxygis.__version__,
    }
    sealed = seal_manifest(manifest, keys)
    for site in sites:
        if site.name in failures:
            continue
        try:
            site.put(f"{backup.prefix}/{MANIFEST_OBJECT}", sealed)
        except SiteError as exc:
            failures[site.name] = str(exc)
    Backup.objects.filter(pk=backup.pk).update(
        dump_bytes=source.count, stored_bytes=tee.count, sha256=sha256, manifest=manifest
    )
    for name, error in failures.items():
        BackupCopy.objects.filter(backup=backup, site=name).update(
            state=BackupCopy.FAILED, error=error[:1000]
        )
    backup.refresh_from_db()
    for site in sites:
        if site.name not in failures:
            lease.renew()
            say(f"{target.label}: reading back from {site.name}")
            verify_copy(backup, site, keys)
    settle(backup, finished=True)


# --- verification ----------------------------------------------------------------------
def verify_copy(backup: Backup, site: Site, keys=None) -> BackupCopy:
    """Read back one site's copy: SHA-256 and size of the data, signature of the manifest."""
    keys = keys or configured_keys()
    copy, _ = BackupCopy.objects.get_or_create(backup=backup, site=site.name)
    state, error = BackupCopy.VERIFIED, ""
    try:
        sealed = site.get(f"{backup.prefix}/{MANIFEST_OBJECT}")
        open_manifest(sealed, keys, expect_id=backup.id.hex, expect_sha256=backup.sha256)
        digest, size = sha256_of(site.reader(f"{backup.prefix}/{DUMP_OBJECT}"))
        if digest != backup.sha256 or size != backup.stored_bytes:
            state, error = BackupCopy.MISMATCH, "the data read back does not match its SHA-256"
    except ManifestError as exc:
        state, error = BackupCopy.MISMATCH, str(exc)
    except SiteError as exc:
        missing = "is missing" in str(exc)
        state, error = (BackupCopy.MISSING if missing else BackupCopy.FAILED), str(exc)
    copy.state, copy.error = state, error[:1000]
    copy.verified_at = timezone.now()
    copy.save(update_fields=["state", "error", "verified_at"])
    key = f"copy-bad:{backup.id.hex}:{site.name}"
    if state == BackupCopy.VERIFIED:
        alerts.resolve_alert(key)
    elif backup.state != Backup.RUNNING or state == BackupCopy.MISMATCH:
        alerts.raise_alert(
            key,
            f"backup {backup.short_id} of {backup.label} on {site.name}: "
            f"{copy.get_state_display().lower()} ({error})",
        )
    return copy


def settle(backup: Backup, *, finished: bool = False) -> Backup:
    """Set the backup's state from its verified copies (C3)."""
    verified = backup.copies.filter(state=BackupCopy.VERIFIED).count()
    if verified >= settings.BACKUP_MIN_GOOD_SITES:
        state = Backup.GOOD
    elif verified:
        state = Backup.DEGRADED
    else:
        state = Backup.FAILED
    fields = {"state": state}
    if finished:
        fields["finished_at"] = timezone.now()
        if state == Backup.FAILED:
            fields["error"] = "no site holds a verified copy"
    Backup.objects.filter(pk=backup.pk).update(**fields)
    backup.refresh_from_db()
    return backup


def verify_backup(backup: Backup, sites=None, keys=None, progress: Progress | None = None):
    """Re-read every copy of a backup; returns the copies that are not verified."""
    sites = configured_sites() if sites is None else sites
    bad = []
    for site in sites:
        if progress:
            progress(f"{backup.short_id}: reading back from {site.name}")
        copy = verify_copy(backup, site, keys)
        if copy.state != BackupCopy.VERIFIED:
            bad.append(copy)
    settle(backup)
    return bad


def resync(backup: Backup, sites=None, keys=None) -> Backup:
    """Copy a backup to the sites that miss it (from a site where it verifies)."""
    sites = configured_sites() if sites is None else sites
    keys = keys or configured_keys()
    copies = {c.site: c for c in backup.copies.all()}
    good = [s for s in sites if copies.get(s.name) and copies[s.name].state == BackupCopy.VERIFIED]
    # Not to a site that fails its probe (alerted on): it would fail again, at length.
    down = set(alerts.open_alerts().filter(key__startswith="site:").values_list("key", flat=True))
    wanting = [s for s in sites if s not in good and f"site:{s.name}" not in down]
    if not good or not wanting:
        return settle(backup)
    source = good[0]
    with LeaseGuard(backup.target, f"a re-sync of {backup.label}"):
        sealed = source.get(f"{backup.prefix}/{MANIFEST_OBJECT}")
        for site in wanting:
            try:
                reader = source.reader(f"{backup.prefix}/{DUMP_OBJECT}")
                writer = site.writer(f"{backup.prefix}/{DUMP_OBJECT}")
                while chunk := reader.read(1 << 20):
                    writer.write(chunk)
                writer.close()
                site.put(f"{backup.prefix}/{MANIFEST_OBJECT}", sealed)
            except Exception as exc:  # one site failing must not stop the others
                BackupCopy.objects.update_or_create(
                    backup=backup,
                    site=site.name,
                    defaults={"state": BackupCopy.FAILED, "error": one_line(exc)[:1000]},
                )
                continue
            verify_copy(backup, site, keys)
    return settle(backup)


# --- retention (C1) ----------------------------------------------------------------------
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


# --- lookup --------------------------------------------------------------------------
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
