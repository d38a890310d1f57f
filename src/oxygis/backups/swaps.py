"""Swapping a tenant's database (a live restore, a rollback): drained, said, resumable.

1. The tenant goes into maintenance (its pages answer 503 with Retry-After) and its guard
   is drained: no request, command or job holds it any more (tenancy/guard.py). Past the
   timeout nothing is swapped and the tenant comes back as it was.
2. What is about to be replaced is measured on the database itself, logged, and kept on
   the Restore row: rows written since the restored point, the last write, and a CSV of
   the orders created since then (they are not carried over silently).
3. The order counter of the replaced database is read: numbers already given out are
   never given again (the database put in place continues after the highest one known).
4. The databases are swapped (engines), and the one now in place forgets the credentials
   revoked since its point in time (credentials.distrust) before the tenant is served.

Each step is recorded (``Restore.phase``), so that a process killed anywhere leaves
enough for ``recover_interrupted`` to finish or undo the swap.
"""

from __future__ import annotations

import csv
import logging
import os
import secrets
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from oxygis.access.actors import system
from oxygis.sales.models import Contact, Order, OrderSequence, Product
from oxygis.tenancy.databases import forget_tenant_database, open_database
from oxygis.tenancy.engines import engine_for
from oxygis.tenancy.guard import DrainTimeout, drained
from oxygis.tenancy.models import Tenant
from oxygis.tenancy.tenants import discard_tenant

from . import alerts
from .credentials import distrust
from .errors import BackupError
from .leases import LeaseGuard, LeaseHeld
from .models import Backup, Restore

log = logging.getLogger("oxygis.backups")

TEST_INTERRUPTED = "interrupted (its scratch database removed): run again at the next pass"


def swap_names(tenant: Tenant) -> tuple[str, str]:
    """(replacement, kept) names for a new swap of the tenant's database."""
    stamp = secrets.token_hex(4)
    return f"{tenant.db_name}_r{stamp}", f"{tenant.db_name}_p{stamp}"


# --- what is replaced ---------------------------------------------------------------------
def describe_replaced(entry: dict, since: datetime, *, orders_to: Path | None = None) -> dict:
    """What the database behind ``entry`` holds that is newer than ``since``: counts of
    rows written since, the last write, and (to ``orders_to``) the orders created since."""
    with open_database(entry, prefix="replaced"), system(reason="say what a restore replaces"):
        created = Order.objects.filter(created_at__gte=since).select_related("customer")
        changed = {
            "orders_created": created.count(),
            "orders_changed": Order.objects.filter(
                updated_at__gte=since, created_at__lt=since
            ).count(),
            "contacts_changed": Contact.objects.filter(updated_at__gte=since).count(),
            "products_changed": Product.objects.filter(updated_at__gte=since).count(),
        }
        last = [
            model.objects.order_by("-updated_at").values_list("updated_at", flat=True).first()
            for model in (Order, Contact, Product)
        ]
        report = {
            "since": since.isoformat(),
            **changed,
            "last_write": max((t for t in last if t), default=None),
        }
        if report["last_write"] is not None:
            report["last_write"] = report["last_write"].isoformat()
        if orders_to is not None and changed["orders_created"]:
            orders_to.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(orders_to, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["number", "created_at", "customer", "state", "total", "currency"])
                for order in created.order_by("id"):
                    writer.writerow(
                        [
                            order.number,
                            order.created_at.isoformat(),
                            order.customer.name,
                            order.state,
                            order.amount_total,
                            order.currency,
                        ]
                    )
            report["orders_report"] = str(orders_to)
    return report


def summary(report: dict) -> str:
    """One line of what a swap replaces (or replaced)."""
    if not report or "orders_created" not in report:
        return "nothing measured yet"
    since = datetime.fromisoformat(report["since"])
    text = (
        f"since {since:%Y-%m-%d %H:%M} UTC: {report['orders_created']} order(s) created, "
        f"{report['orders_changed']} changed, {report['contacts_changed']} contact(s) and "
        f"{report['products_changed']} product(s) written"
    )
    if report.get("last_write"):
        text += f"; last write {datetime.fromisoformat(report['last_write']):%Y-%m-%d %H:%M:%S}"
    if report.get("orders_report"):
        text += f"; those orders are listed in {report['orders_report']}"
    return text


def _report_path(tenant: Tenant, run: Restore) -> Path:
    return Path(settings.VAR_DIR) / "reports" / f"{tenant.slug}-{run.id.hex[:8]}-orders.csv"


# --- order numbers ------------------------------------------------------------------------
def order_counter(entry: dict) -> int:
    with open_database(entry, prefix="counter"):
        row = OrderSequence.objects.filter(pk=1).first()
        return row.next_number if row is not None else 1


def raise_order_counter(entry: dict, at_least: int) -> None:
    """The next order number of that database becomes at least ``at_least``."""
    with open_database(entry, prefix="counter") as alias, transaction.atomic(using=alias):
        OrderSequence.objects.get_or_create(pk=1)
        OrderSequence.objects.filter(pk=1, next_number__lt=at_least).update(next_number=at_least)


def highest_known_order_number(tenant: Tenant) -> int:
    """The highest next order number the catalog has seen for the tenant: in each
    backup's manifest and read before each swap (outside the tenant's database)."""
    numbers = [
        m.get("order_next_number") or 1
        for m in Backup.objects.filter(target=tenant.id.hex).values_list("manifest", flat=True)
    ]
    numbers += Restore.objects.filter(
        Q(backup__target=tenant.id.hex) | Q(tenant=tenant), replaced_order_number__isnull=False
    ).values_list("replaced_order_number", flat=True)
    return max(numbers, default=1)


# --- the swap -----------------------------------------------------------------------------
def _resume(tenant: Tenant, state: str) -> None:
    Tenant.objects.filter(pk=tenant.pk, state=Tenant.MAINTENANCE).update(
        state=state or Tenant.ACTIVE
    )


def _save(run: Restore, *fields: str) -> None:
    run.save(update_fields=list(fields))


def swap_in(run: Restore, tenant: Tenant, *, since: datetime) -> dict:
    """Put ``run.replacement_database`` in place of the tenant's database, keeping the
    current one as ``run.previous_database``. Returns what the new one was made to
    forget; raises BackupError (nothing swapped) if the tenant could not be drained."""
    engine = engine_for(tenant.database_server)
    run.state_before = tenant.state if tenant.state != Tenant.MAINTENANCE else Tenant.ACTIVE
    run.report = {"since": since.isoformat()}
    _save(run, "state_before", "report")
    Tenant.objects.filter(pk=tenant.pk).update(state=Tenant.MAINTENANCE)
    try:
        with drained(tenant, settings.RESTORE_DRAIN_SECONDS):
            forget_tenant_database(tenant)
            live = engine.tenant_entry(tenant)
            run.report = describe_replaced(live, since, orders_to=_report_path(tenant, run))
            run.replaced_order_number = order_counter(live)
            run.phase = Restore.SWAPPING
            _save(run, "report", "replaced_order_number", "phase")
            log.warning(
                "%s of %s replaces its live database (kept as %s): %s",
                run.get_mode_display(),
                tenant.slug,
                run.previous_database,
                summary(run.report),
            )
            engine.swap_databases(tenant, run.replacement_database, run.previous_database)
            run.phase = Restore.SWAPPED
            _save(run, "phase")
            return complete(run, tenant)
    except DrainTimeout as exc:
        _resume(tenant, run.state_before)
        raise BackupError(
            f"{exc} (requests or jobs still running): nothing was swapped; try again"
        ) from None
    except BaseException:
        swapped = run.phase == Restore.SWAPPED or (
            run.phase == Restore.SWAPPING
            and engine.finish_or_undo_swap(tenant, run.replacement_database, run.previous_database)
        )
        if not swapped:
            _resume(tenant, run.state_before)
        # Swapped but not completed: the tenant stays in maintenance (fail closed) until
        # recover_interrupted completes it.
        raise


def complete(run: Restore, tenant: Tenant) -> dict:
    """After the swap: the database in place forgets the credentials revoked since its
    point in time and continues the order numbers; then the tenant is served again.
    Idempotent (recovery runs it again after a crash)."""
    engine = engine_for(tenant.database_server)
    live = engine.tenant_entry(tenant)
    since = datetime.fromisoformat(run.report["since"])
    forgotten = distrust(live, tenant, since, fresh_copy=False)
    floor = max(run.replaced_order_number or 1, highest_known_order_number(tenant))
    raise_order_counter(live, floor)
    # A database kept by an earlier swap that is now back in place is kept no more.
    Restore.objects.filter(state=Restore.DONE, previous_database=run.replacement_database).exclude(
        pk=run.pk
    ).update(previous_database="")
    _resume(tenant, run.state_before)
    run.report = {**run.report, "revoked": forgotten}
    _save(run, "report")
    return forgotten


# --- recovery after a crash ----------------------------------------------------------------
def recover_interrupted() -> list[Restore]:
    """Finish or undo every restore whose process died (its lease is free): nothing
    half-done stays, no tenant stays in maintenance. Run by the worker each pass."""
    recovered = []
    for run in Restore.objects.filter(state=Restore.RUNNING).select_related("backup", "tenant"):
        try:
            lease = LeaseGuard(f"restore:{run.id.hex}", "this restore").acquire()
        except LeaseHeld:
            continue  # alive somewhere
        try:
            run.refresh_from_db()
            if run.state == Restore.RUNNING:
                _recover(run)
                recovered.append(run)
        finally:
            lease.release()
    return recovered


def _recover(run: Restore) -> None:
    tenant = run.subject
    outcome = Restore.FAILED
    if run.mode in (Restore.LIVE, Restore.ROLLBACK) and tenant is not None:
        tenant = Tenant.objects.select_related("database_server").get(pk=tenant.pk)
        engine = engine_for(tenant.database_server)
        with LeaseGuard(tenant.id.hex, f"a backup or restore of tenant {tenant.slug}"):
            swapped = run.phase == Restore.SWAPPED or (
                run.phase == Restore.SWAPPING
                and engine.finish_or_undo_swap(
                    tenant, run.replacement_database, run.previous_database
                )
            )
            if swapped:
                complete(run, tenant)
                outcome, text = Restore.DONE, "completed after its process was interrupted"
            else:
                if run.mode == Restore.LIVE and run.replacement_database:
                    engine.drop_named_database(run.replacement_database)
                _resume(tenant, run.state_before)
                text = "interrupted before the swap: the live database was not replaced"
    elif run.mode == Restore.SIDE_BY_SIDE and run.new_slug:
        half_made = Tenant.objects.filter(slug=run.new_slug, state=Tenant.PROVISIONING).first()
        if half_made is not None:
            discard_tenant(half_made, engine_for(half_made.database_server))
        text = "interrupted: the half-restored workspace was removed"
    elif run.mode == Restore.TEST:
        if run.replacement_database and run.backup is not None:
            from .restore import scratch_engine

            scratch_engine(run.backup).drop_named_database(run.replacement_database)
        text = TEST_INTERRUPTED
    else:
        text = "interrupted"
    if outcome != Restore.DONE:
        run.previous_database = ""  # nothing was kept: the swap did not happen
    run.state, run.finished_at = outcome, timezone.now()
    run.detail = f"{run.detail}; {text}".strip("; ")[:2000]
    _save(run, "state", "finished_at", "detail", "previous_database")
    label = run.label
    log.warning("restore %s of %s %s", run.id.hex[:12], label, text)
    # A restore test cut short says nothing about the backup: it is run again at the next
    # pass (monitor.restore_test_due), and only its own failure raises an alert.
    if outcome == Restore.FAILED and run.target_key is not None and run.mode != Restore.TEST:
        alerts.raise_alert(
            f"restore-failed:{run.target_key}",
            f"{run.get_mode_display().lower()} of {label} {text}",
        )


# --- kept databases ----------------------------------------------------------------------
def expire_kept_databases(now: datetime | None = None) -> list[str]:
    """Drop databases kept by swaps once KEPT_DATABASE_DAYS have passed, with an alert
    KEPT_DATABASE_WARNING_DAYS before."""
    now = now or timezone.now()
    keep = timedelta(days=settings.KEPT_DATABASE_DAYS)
    warn = timedelta(days=settings.KEPT_DATABASE_WARNING_DAYS)
    dropped = []
    kept = Restore.objects.filter(
        state=Restore.DONE, mode__in=(Restore.LIVE, Restore.ROLLBACK)
    ).exclude(previous_database="")
    for run in kept.select_related("backup__tenant__database_server", "tenant__database_server"):
        key = f"kept-expiring:{run.id.hex}"
        tenant = run.subject
        expires = run.finished_at + keep
        if tenant is None:
            run.previous_database = ""
            _save(run, "previous_database")
            alerts.resolve_alert(key)
        elif now >= expires:
            engine_for(tenant.database_server).drop_named_database(run.previous_database)
            log.warning(
                "dropped %s, kept %s days after a swap of %s",
                run.previous_database,
                settings.KEPT_DATABASE_DAYS,
                tenant.slug,
            )
            dropped.append(run.previous_database)
            run.detail = f"{run.detail}; kept database dropped on {now:%Y-%m-%d}"[:2000]
            run.previous_database = ""
            _save(run, "previous_database", "detail")
            alerts.resolve_alert(key)
        elif now >= expires - warn:
            alerts.raise_alert(
                key,
                f"the database {run.previous_database} kept by a swap of {tenant.slug} will be "
                f"dropped on {expires:%Y-%m-%d} (OXYGIS_KEPT_DATABASE_DAYS); roll back or "
                "copy it before then if it is still needed",
            )
    return dropped
