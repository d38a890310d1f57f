"""A backup's one pass: dump -> zstd -> age (to the recipients' public keys) -> every
site at once, hashed on the way; then every copy read back (``verify``) and a signed
manifest written beside it. A backup is ``good`` only when verified on at least
BACKUP_MIN_GOOD_SITES sites (C3); with fewer it is ``degraded`` and a later re-sync
copies it to the sites that miss it. Nothing half-made stays, whatever stops it.
"""

from __future__ import annotations

import contextlib
import logging

import pyrage
import zstandard
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

import oxygis

from . import alerts
from .dumps import open_dump
from .keys import configured_keys
from .leases import LeaseGuard
from .manifest import (
    DUMP_OBJECT,
    FORMAT,
    MANIFEST_OBJECT,
    ManifestError,
    open_manifest,
    seal_manifest,
)
from .models import Backup, BackupCopy
from .sites import Site, SiteError, configured_sites, one_line
from .streams import CountingReader, SiteTee
from .targets import Progress, Target
from .verify import settle, verify_copy

log = logging.getLogger("oxygis.backups")

ZSTD_LEVEL = 3


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
