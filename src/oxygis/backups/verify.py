"""Reading backups back: each copy against its SHA-256 and signed manifest, a backup's
state from its verified copies (C3), and re-syncs to the sites that miss a copy."""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone

from . import alerts
from .keys import configured_keys
from .leases import LeaseGuard
from .manifest import DUMP_OBJECT, MANIFEST_OBJECT, ManifestError, open_manifest
from .models import Backup, BackupCopy
from .sites import Site, SiteError, configured_sites, one_line
from .streams import sha256_of
from .targets import Progress


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
