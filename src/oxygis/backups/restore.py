"""Restores (C4): side by side into a new tenant, onto live (beside, verify, swap, keep
the previous database), and scratch restores that test backups (C8).

Live data is never touched before its replacement is restored and verified: migration
state and rows per table equal to the signed manifest's (or to the point-in-time copy's),
integrity checked. Where the data comes from (a backup's copies, tried site by site, or
the WAL archive as of a moment) is ``sources``; the modes are here.
"""

from __future__ import annotations

import logging
import secrets
from datetime import date, datetime

from django.conf import settings
from django.core.management import call_command
from django.utils import timezone

from oxygis.audit.events import record
from oxygis.tenancy.databases import (
    default_server,
    forget_tenant_database,
    open_database,
    server_for_new_tenant,
    tenant_context,
)
from oxygis.tenancy.engines import engine_for
from oxygis.tenancy.models import Tenant
from oxygis.tenancy.tenants import (
    SlugTaken,
    TenantError,
    discard_tenant,
    register_tenant,
    validate_slug,
)

from . import alerts, pitr
from .credentials import distrust
from .dumps import DatabaseRef
from .errors import BackupError
from .leases import LeaseGuard
from .models import Backup, Restore
from .sites import one_line
from .sources import check_restored, restore_stream, source_of
from .swaps import (
    highest_known_order_number,
    order_counter,
    raise_order_counter,
    summary,
    swap_in,
    swap_names,
)

log = logging.getLogger("oxygis.backups")


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
        source.database_server
        if source.database_server.accepts_new_tenants
        else server_for_new_tenant()
    )
    for _ in range(5):
        try:
            tenant = register_tenant(
                side_by_side_slug(source.slug, origin.taken_at.date()),
                name=f"{source.name} (restored {origin.taken_at:%Y-%m-%d})",
                plan=source.plan,
                server=server,
            )
            break
        except SlugTaken:
            continue  # taken meanwhile by another restore: the next free one
    else:
        raise TenantError("could not choose a free name for the restored tenant")
    engine = engine_for(server)
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
        engine.protect_audit(tenant)
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
            engine.protect_audit(tenant, replacement)
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
