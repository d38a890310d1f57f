"""Restores (C4): side by side into a new tenant, onto live (beside, verify, swap, keep
the previous database), and scratch restores that test backups (C8).

Live data is never touched before its replacement is restored and verified: migration
state and rows per table equal to the signed manifest's, integrity checked. Each copy is
tried in turn: a site whose copy is missing, altered or unreadable is skipped.
"""

from __future__ import annotations

import logging
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

import pyrage
import zstandard
from django.conf import settings
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.utils import timezone

from oxygis.audit.events import record
from oxygis.tenancy.context import CATALOG
from oxygis.tenancy.databases import (
    default_server,
    forget_tenant_database,
    open_database,
    tenant_context,
)
from oxygis.tenancy.engines import engine_for
from oxygis.tenancy.models import Tenant
from oxygis.tenancy.provisioning import (
    TenantError,
    database_name,
    discard_tenant,
    validate_slug,
)

from . import alerts, pitr
from .credentials import distrust
from .dumps import DatabaseRef, inspect, open_dump, restore_sink
from .errors import BackupError
from .keys import configured_keys, fingerprint
from .leases import LeaseGuard
from .manifest import ManifestError, open_manifest
from .models import Backup, BackupCopy, Restore
from .service import DUMP_OBJECT, MANIFEST_OBJECT
from .sites import SiteError, configured_sites, one_line
from .streams import HashingReader
from .swaps import (
    highest_known_order_number,
    order_counter,
    raise_order_counter,
    summary,
    swap_in,
    swap_names,
)

log = logging.getLogger("oxygis.backups")


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


def _migrate(entry: dict) -> None:
    """Bring a restored database of an older schema to the current migrations."""
    with open_database(entry, prefix="restore") as alias:
        call_command("migrate", database=alias, interactive=False, verbosity=0)


def _start(restore: Restore) -> None:
    restore.state, restore.started_at = Restore.RUNNING, timezone.now()
    restore.save(update_fields=["state", "started_at"])


def _finish(restore: Restore, state: str, detail: str) -> Restore:
    restore.state, restore.finished_at, restore.detail = state, timezone.now(), detail[:2000]
    if state == Restore.FAILED:
        restore.previous_database = ""  # a failed swap keeps nothing
    restore.save(
        update_fields=["state", "finished_at", "detail", "site", "new_slug", "previous_database"]
    )
    return restore


def request_restore(backup: Backup, mode: str, requested_by: str) -> Restore:
    if backup.state not in (Backup.GOOD, Backup.DEGRADED):
        raise BackupError(f"backup {backup.short_id} is {backup.state}: it cannot be restored")
    run = Restore(backup=backup, tenant=backup.tenant, mode=mode, requested_by=requested_by)
    if mode == Restore.LIVE:
        if backup.tenant is None:
            raise BackupError("this backup's tenant no longer exists: restore it side by side")
        # Named now, so that what is kept can be said before it happens.
        run.replacement_database, run.previous_database = swap_names(backup.tenant)
    run.save()
    return run


def request_point_in_time(tenant: Tenant, at: datetime, mode: str, requested_by: str) -> Restore:
    """A restore of ``tenant`` as of ``at`` from its server's WAL archive (PostgreSQL)."""
    if tenant.database_server.engine != "postgresql":
        raise BackupError(
            f"tenant {tenant.slug} is on SQLite: point-in-time recovery needs PostgreSQL; "
            "restore one of its backups (--backup)"
        )
    pitr.archive_for(tenant.database_server)
    run = Restore(tenant=tenant, point_in_time=at, mode=mode, requested_by=requested_by)
    if mode == Restore.LIVE:
        run.replacement_database, run.previous_database = swap_names(tenant)
    run.save()
    return run


def perform(restore: Restore, *, sites=None, keys=None, progress=None) -> Restore:
    """Run a requested restore to its end; the Restore row says how it went.

    Its lease (renewed as it progresses) tells the worker's recovery that it is alive;
    killed, it is finished or undone by ``swaps.recover_interrupted``."""
    runner = {
        Restore.SIDE_BY_SIDE: _side_by_side,
        Restore.LIVE: _live,
        Restore.TEST: _test,
    }[restore.mode]
    with LeaseGuard(f"restore:{restore.id.hex}", "this restore") as lease:

        def tick(text: str) -> None:
            lease.renew()
            if progress:
                progress(text)

        return _perform(restore, runner, sites=sites, keys=keys, progress=tick)


def _perform(restore: Restore, runner, *, sites, keys, progress) -> Restore:
    _start(restore)
    try:
        detail = runner(restore, sites=sites, keys=keys, progress=progress)
    except Exception as exc:
        _finish(restore, Restore.FAILED, one_line(exc))
        if restore.target_key is not None:
            what = (
                f"backup {restore.backup.short_id}"
                if restore.backup is not None
                else f"the state of {restore.point_in_time:%Y-%m-%d %H:%M:%S} UTC"
            )
            alerts.raise_alert(
                f"restore-failed:{restore.target_key}",
                f"{restore.get_mode_display().lower()} of {what} ({restore.label}) failed: "
                f"{one_line(exc)}",
            )
        raise
    if restore.mode == Restore.TEST:
        alerts.resolve_alert(f"restore-failed:{restore.backup.target}")
    return _finish(restore, Restore.DONE, detail)


# --- side by side ------------------------------------------------------------------------
def side_by_side_slug(slug: str, day: date) -> str:
    suffix = f"-restored-{day:%Y%m%d}"
    base = slug[: 40 - len(suffix) - 3].rstrip("-")
    candidate = f"{base}{suffix}"
    n = 2
    while Tenant.objects.filter(slug=candidate).exists():
        candidate = f"{base}{suffix}-{n}"
        n += 1
    return validate_slug(candidate)


def _side_by_side(restore: Restore, *, sites, keys, progress) -> str:
    origin = source_of(restore, sites=sites, keys=keys)
    source = origin.tenant
    if source is None:
        raise BackupError("only a tenant's backup can be restored side by side")
    server = (
        source.database_server if source.database_server.accepts_new_tenants else default_server()
    )
    engine = engine_for(server)
    tenant = Tenant(
        name=f"{source.name} (restored {origin.taken_at:%Y-%m-%d})",
        plan=source.plan,
        database_server=server,
    )
    tenant.db_name = database_name(tenant)
    for _ in range(5):
        tenant.slug = side_by_side_slug(source.slug, origin.taken_at.date())
        try:
            with transaction.atomic(using=CATALOG):
                tenant.save(force_insert=True)
            break
        except IntegrityError:
            continue
    else:
        raise TenantError("could not choose a free name for the restored tenant")
    restore.new_slug = tenant.slug
    restore.save(update_fields=["new_slug"])
    try:
        tenant.db_password_sealed = engine.create_tenant_storage(tenant)
        tenant.save(update_fields=["db_password_sealed", "updated_at"])
        entry = engine.tenant_entry(tenant)
        ref = DatabaseRef.from_entry(entry)

        def prepare():
            if not engine.database_exists(tenant) and ref.engine == "postgresql":
                engine.create_named_database(tenant.db_name, tenant)

        def discard():
            forget_tenant_database(tenant)
            engine.drop_named_database(tenant.db_name)

        site = origin.fill(ref, prepare, discard, progress)
        restore.site = site[:500]
        _migrate(entry)
        # A new workspace: no session, key or link of the original is valid in it, and
        # it never gives out an order number the original already has.
        forgotten = distrust(entry, source, origin.taken_at, fresh_copy=True)
        source_entry = engine_for(source.database_server).tenant_entry(source)
        raise_order_counter(
            entry, max(highest_known_order_number(source), order_counter(source_entry))
        )
        tenant.state = Tenant.ACTIVE
        tenant.save(update_fields=["state", "updated_at"])
    except BaseException:
        discard_tenant(tenant, engine)
        raise
    details = {
        "backup": restore.backup.short_id if restore.backup else None,
        "taken": origin.taken_at.isoformat(),
        "new_tenant": tenant.slug,
        "revoked": forgotten,
    }
    with tenant_context(tenant):
        record(
            "backup.restored_side_by_side", target=tenant.slug, by=restore.requested_by, **details
        )
    if source.state == Tenant.ACTIVE:
        with tenant_context(source):
            record(
                "backup.restored_side_by_side",
                target=tenant.slug,
                by=restore.requested_by,
                **details,
            )
        forget_tenant_database(source)
    forget_tenant_database(tenant)
    return f"restored as tenant {tenant.slug} from {site}"


# --- onto live ---------------------------------------------------------------------------
def _live(restore: Restore, *, sites, keys, progress) -> str:
    origin = source_of(restore, sites=sites, keys=keys)
    tenant = origin.tenant
    if tenant is None:
        raise BackupError("this backup's tenant no longer exists: restore it side by side")
    tenant = Tenant.objects.select_related("database_server", "plan").get(pk=tenant.pk)
    engine = engine_for(tenant.database_server)
    replacement, previous = restore.replacement_database, restore.previous_database
    entry = engine.entry_named(tenant, replacement)
    ref = DatabaseRef.from_entry(entry)
    with LeaseGuard(tenant.id.hex, f"a backup or restore of tenant {tenant.slug}") as lease:
        restore.phase = Restore.RESTORING
        restore.save(update_fields=["phase"])

        def tick(text: str) -> None:
            lease.renew()
            progress(text)

        def prepare():
            engine.drop_named_database(replacement)
            engine.create_named_database(replacement, tenant)

        def discard():
            engine.drop_named_database(replacement)

        site = origin.fill(ref, prepare, discard, tick)
        restore.site = site[:500]
        try:
            _migrate(entry)
        except BaseException:
            discard()
            raise
        try:
            forgotten = swap_in(restore, tenant, since=origin.taken_at)
        except BackupError:
            discard()  # not swapped (the tenant stayed busy): the copy goes
            raise
    with tenant_context(tenant):
        record(
            "backup.restored_live",
            target=tenant.slug,
            by=restore.requested_by,
            backup=restore.backup.short_id if restore.backup else None,
            taken=origin.taken_at.isoformat(),
            previous_database=previous,
            replaced=restore.report,
            revoked=forgotten,
        )
    return (
        f"live database replaced from {site}; the previous one is kept as {previous}; "
        f"it held, {summary(restore.report)}"
    )


def roll_back(run: Restore, requested_by: str) -> Restore:
    """Undo a swap: the database it replaced goes back in place, and the one it put in
    place is kept in turn (so the rollback can itself be rolled back). A swap like the
    others: drained, said, resumable; recorded as a Restore of mode "rollback"."""
    if (
        run.mode not in (Restore.LIVE, Restore.ROLLBACK)
        or run.state != Restore.DONE
        or not run.previous_database
    ):
        raise BackupError("only a completed live restore (or rollback) can be rolled back")
    if run.subject is None:
        raise BackupError("the tenant of this restore no longer exists")
    tenant = Tenant.objects.select_related("database_server").get(pk=run.subject.pk)
    _, kept = swap_names(tenant)
    back = Restore.objects.create(
        backup=run.backup,
        tenant=tenant,
        mode=Restore.ROLLBACK,
        requested_by=requested_by,
        replacement_database=run.previous_database,
        previous_database=kept,
    )
    with LeaseGuard(f"restore:{back.id.hex}", "this rollback"):
        _start(back)
        try:
            with LeaseGuard(tenant.id.hex, f"a backup or restore of tenant {tenant.slug}"):
                back.phase = Restore.RESTORING
                back.save(update_fields=["phase"])
                # What was revoked while the database put back was not live stays revoked.
                forgotten = swap_in(back, tenant, since=run.started_at)
        except Exception as exc:
            _finish(back, Restore.FAILED, one_line(exc))
            raise
    with tenant_context(tenant):
        record(
            "backup.rolled_back",
            target=tenant.slug,
            by=requested_by,
            backup=run.backup.short_id if run.backup else None,
            kept_database=kept,
            replaced=back.report,
            revoked=forgotten,
        )
    return _finish(
        back,
        Restore.DONE,
        f"{run.replacement_database or 'the restored database'} replaced by "
        f"{run.previous_database}, kept as {kept}; it held, {summary(back.report)}",
    )


# --- restore test (C8) -------------------------------------------------------------------
def scratch_engine(backup: Backup):
    """The engine whose server takes scratch restores of ``backup``."""
    tenant = backup.tenant
    if backup.engine == "postgresql":
        server = tenant.database_server if tenant is not None else default_server()
    else:
        server = default_server()
    if backup.engine == "postgresql" and server.engine != "postgresql":
        raise BackupError("a PostgreSQL backup needs a PostgreSQL server to be tested")
    return engine_for(server)


def _test(restore: Restore, *, sites, keys, progress) -> str:
    backup = restore.backup
    engine = scratch_engine(backup)
    name = f"{settings.DB_PREFIX}scratch_{secrets.token_hex(4)}"
    restore.replacement_database = name  # for the recovery, should this process die
    restore.save(update_fields=["replacement_database"])
    entry = engine.entry_named(None, name)
    ref = DatabaseRef.from_entry(entry)
    try:
        site, manifest = restore_stream(
            backup,
            ref,
            lambda: engine.create_named_database(name),
            lambda: engine.drop_named_database(name),
            sites=sites,
            keys=keys,
            progress=progress,
        )
        restore.site = site
        check_restored(ref, manifest)
    finally:
        engine.drop_named_database(name)
    return f"restored from {site} into a scratch database and verified"
