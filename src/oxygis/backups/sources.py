"""Where a restore's data comes from (C4, C7): a backup's copy on a site (each site tried
in turn, the copy checked against its signed manifest), or the WAL archive as of a
moment (``pitr``, checked against the copy it was dumped from). Each is a ``Source``
whose ``fill`` puts the data into an empty database; ``restore`` does the rest.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import pyrage
import zstandard
from django.utils import timezone

from oxygis.tenancy.models import Tenant

from . import alerts, pitr
from .dumps import DatabaseRef, inspect, open_dump, restore_sink
from .errors import BackupError
from .keys import configured_keys, fingerprint
from .manifest import DUMP_OBJECT, MANIFEST_OBJECT, ManifestError, open_manifest
from .models import Backup, BackupCopy, Restore
from .sites import SiteError, configured_sites, one_line
from .streams import HashingReader


class WrongKey(BackupError):
    pass


def _ordered_sites(backup: Backup, sites):
    """Sites whose copy was last verified first; the others after, as a last resort."""
    verified = set(backup.copies.filter(state=BackupCopy.VERIFIED).values_list("site", flat=True))
    return sorted(sites, key=lambda s: s.name not in verified)


def restore_stream(
    backup: Backup,
    ref: DatabaseRef,
    prepare,
    discard,
    *,
    sites=None,
    keys=None,
    progress=None,
    mark: bool = True,
):
    """Restore ``backup`` into ``ref``, trying each site; returns (site name, manifest).

    ``prepare()`` makes the empty target, ``discard()`` removes a failed attempt. Without
    ``mark`` (a catalog being rebuilt: no table to record in yet) bad copies are only
    reported, not recorded.
    """
    sites = configured_sites() if sites is None else sites
    keys = keys or configured_keys()
    identities = keys.age_identities()
    problems = []
    note = _mark if mark else (lambda backup, site_name, exc: None)
    for site in _ordered_sites(backup, sites) if mark else sites:
        try:
            sealed = site.get(f"{backup.prefix}/{MANIFEST_OBJECT}")
            manifest = open_manifest(
                sealed, keys, expect_id=backup.id.hex, expect_sha256=backup.sha256
            )
            raw = site.reader(f"{backup.prefix}/{DUMP_OBJECT}")
        except (SiteError, ManifestError) as exc:
            problems.append(f"{site.name}: {exc}")
            note(backup, site.name, exc)
            continue
        if progress:
            progress(f"restoring {backup.short_id} from {site.name}")
        reader = HashingReader(
            raw, (lambda n: progress(f"{n / 1e6:.1f} MB read")) if progress else None
        )
        prepare()
        try:
            with restore_sink(ref) as sink:
                decompressor = zstandard.ZstdDecompressor().stream_writer(
                    sink, write_size=1 << 20, closefd=False
                )
                pyrage.decrypt_io(reader, decompressor, identities)
                decompressor.flush()
                if reader.sha256.hexdigest() != backup.sha256:
                    raise ManifestError("the data read back does not match its SHA-256")
        except pyrage.DecryptError as exc:
            discard()
            if "No matching keys" in str(exc):
                mine = ", ".join(fingerprint(str(i.to_public())) for i in identities)
                raise WrongKey(
                    f"backup {backup.short_id} cannot be decrypted with the private key in "
                    f"{keys.identity_path} (key {mine}); it was encrypted to "
                    f"{', '.join(manifest.get('recipients', [])) or 'another key'}"
                ) from None
            problems.append(f"{site.name}: cannot decrypt: {one_line(exc)}")
            note(backup, site.name, ManifestError(f"cannot decrypt: {one_line(exc)}"))
            continue
        except (SiteError, ManifestError, zstandard.ZstdError, OSError) as exc:
            # OSError: age refused a chunk whose tag does not match (altered data); errors
            # of the target are BackupError (dumps.restore_sink) and end the restore.
            discard()
            problems.append(f"{site.name}: {one_line(exc)}")
            note(backup, site.name, exc)
            continue
        except BaseException:
            discard()
            raise
        return site.name, manifest
    raise BackupError(
        f"no site holds a usable copy of backup {backup.short_id}: " + "; ".join(problems)
    )


def _mark(backup: Backup, site_name: str, exc: BaseException) -> None:
    state = BackupCopy.MISSING if "is missing" in str(exc) else BackupCopy.MISMATCH
    BackupCopy.objects.filter(backup=backup, site=site_name).update(
        state=state, error=one_line(exc)[:1000], verified_at=timezone.now()
    )
    alerts.raise_alert(
        f"copy-bad:{backup.id.hex}:{site_name}",
        f"backup {backup.short_id} of {backup.label} on {site_name}: {one_line(exc)}",
    )


def check_restored(ref: DatabaseRef, manifest: dict) -> None:
    """The restored database must hold what the manifest says: same migrations, same
    rows per table, and pass the engine's integrity check."""
    found = inspect(ref)
    if found.migrations != manifest["migrations"]:
        raise BackupError("the restored database's migration state differs from the manifest")
    if found.row_counts != manifest["row_counts"]:
        differing = sorted(
            t
            for t in set(found.row_counts) | set(manifest["row_counts"])
            if found.row_counts.get(t) != manifest["row_counts"].get(t)
        )
        raise BackupError(
            f"restored row counts differ from the manifest in: {', '.join(differing[:5])}"
        )


def check_copied(ref: DatabaseRef, expected) -> None:
    """A database copied from another (point in time): same migrations and rows."""
    found = inspect(ref)
    if found.migrations != expected.migrations or found.row_counts != expected.row_counts:
        raise BackupError("the restored database differs from the point-in-time copy it came from")


@dataclass
class Source:
    """What a restore fills its database from: a backup on the sites, or the WAL archive
    as of a moment. ``fill(ref, prepare, discard, progress)`` restores into ``ref``, checks
    it, discards a failed attempt, and returns where it came from."""

    tenant: Tenant | None
    taken_at: datetime
    label: str
    fill: Callable


def source_of(restore: Restore, *, sites=None, keys=None) -> Source:
    if restore.point_in_time is not None:
        return _point_in_time_source(restore)
    backup = restore.backup

    def fill(ref, prepare, discard, progress):
        site, manifest = restore_stream(
            backup, ref, prepare, discard, sites=sites, keys=keys, progress=progress
        )
        try:
            check_restored(ref, manifest)
        except BaseException:
            discard()
            raise
        return site

    return Source(backup.tenant, backup.started_at, f"backup {backup.short_id}", fill)


def _point_in_time_source(restore: Restore) -> Source:
    tenant = Tenant.objects.select_related("database_server").get(pk=restore.tenant_id)
    at = restore.point_in_time

    def fill(ref, prepare, discard, progress):
        archive = pitr.archive_for(tenant.database_server)
        with pitr.restored_as_of(archive, tenant.db_name, at, progress=progress) as point:
            progress(f"copying {tenant.slug} out of the scratch cluster")
            prepare()
            try:
                with (
                    open_dump(DatabaseRef.from_entry(point.entry)) as dump,
                    restore_sink(ref) as sink,
                ):
                    shutil.copyfileobj(dump.stream, sink, 1 << 20)
                check_copied(ref, dump.snapshot)
            except BaseException:
                discard()
                raise
        note = f"; {point.note}" if point.note else ""
        return f"the WAL archive on {point.site} ({point.how}){note}"

    return Source(tenant, at, f"the state of {at:%Y-%m-%d %H:%M:%S} UTC", fill)
