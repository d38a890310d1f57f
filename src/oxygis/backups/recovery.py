"""Disaster recovery (C7): the whole platform back from one backup site and the keys.

``oxygis dr rebuild --from-site URL`` runs on a machine that has only the sites, the
private key and fresh settings. In order:

1. The site is indexed: every signed manifest on it is read and its signature checked
   (a forged or altered one is refused, counted and logged, never trusted).
2. The catalog comes back from the newest catalog backup that restores and checks
   (migrations and rows per table equal to its manifest's); if none does, an empty
   catalog is migrated and its tenant and backup index is rebuilt from the manifests.
   Either way, backups and tenants the site knows but the catalog does not (made after
   the catalog backup) are merged in from their manifests.
3. Every tenant goes "being restored" (503 with Retry-After), then is restored from its
   newest backup on the site onto this machine's database server, paid plans first, up
   to ``jobs`` at a time, and served as soon as it is back: checked against its
   manifest, migrated, made to forget the credentials revoked since (credentials.py),
   its order counter past every number given out.
4. Each tenant's achieved RPO (how old its backup was when the rebuild started) and RTO
   (when it was served again, from the rebuild's start) are stored against its plan's
   targets: ``oxygis dr status``.

Resumable: a marker in the data folder says a rebuild owns the catalog until its
Recovery row exists; after that the row does. Running the command again continues
(tenants already back are kept, one interrupted is restored again from scratch).
A catalog that already holds tenants and no rebuild in progress is refused: this never
runs over a live platform.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.text import slugify

from oxygis.tenancy.databases import default_server, forget_tenant_database, server_fields
from oxygis.tenancy.engines import engine_for
from oxygis.tenancy.models import Plan, Tenant
from oxygis.tenancy.pool import close_idle_connections
from oxygis.tenancy.tenants import database_name

from .credentials import distrust
from .dumps import DatabaseRef
from .errors import BackupError
from .keys import configured_keys
from .manifest import MANIFEST_OBJECT, ManifestError, open_manifest
from .models import CATALOG_TARGET, Backup, BackupCopy, RecoveredTenant, Recovery
from .sites import Site, SiteError, configured_sites, one_line

log = logging.getLogger("oxygis.dr")

Progress = Callable[[str], None]
DEFAULT_PLAN_ORDER = (Plan.PAID, Plan.TRIAL, Plan.EDUCATION, Plan.FREEMIUM)


class RecoveryError(BackupError):
    pass


def _marker() -> Path:
    return Path(settings.VAR_DIR) / "dr-rebuild.json"


# --- 1. the site's index -----------------------------------------------------------------
@dataclass
class SiteIndex:
    catalog: list[dict]  # manifests of catalog backups, newest first
    tenants: list[dict]  # manifests of tenant backups
    refused: list[str]  # "<prefix>: why"


def index_site(site: Site, keys, progress: Progress) -> SiteIndex:
    """Every backup on ``site`` whose signed manifest checks, and the refused ones."""
    try:
        paths = site.paths()
    except SiteError as exc:
        raise RecoveryError(f"cannot list {site.name}: {one_line(exc)}") from None
    found = sorted(p for p in paths if p.endswith(f"/{MANIFEST_OBJECT}") and p.count("/") == 2)
    catalog, tenants, refused = [], [], []
    for n, path in enumerate(found, 1):
        target, backup_id, _ = path.split("/")
        try:
            manifest = open_manifest(site.get(path), keys, expect_id=backup_id, expect_sha256=None)
            if manifest.get("target") != target:
                raise ManifestError("the manifest describes another database")
        except (SiteError, ManifestError) as exc:
            refused.append(f"{target}/{backup_id}: {one_line(exc)}")
            log.warning("dr: manifest %s refused: %s", path, one_line(exc))
            continue
        (catalog if target == CATALOG_TARGET else tenants).append(manifest)
        if n % 100 == 0:
            progress(f"indexed {n} of {len(found)} manifests")
    if not catalog and not tenants:
        # Nothing to rebuild from: never report an empty platform as recovered.
        raise RecoveryError(
            f"{site.name} holds no backup whose manifest checks against this machine's "
            "signing key"
            + (f" ({len(refused)} refused, e.g. {refused[0]})" if refused else "")
            + ": check the site URL and OXYGIS_BACKUP_SIGNING_KEY"
        )
    catalog.sort(key=lambda m: m["started_at"], reverse=True)
    progress(
        f"{site.name}: {len(catalog)} catalog and {len(tenants)} tenant backups, "
        f"{len(refused)} refused"
    )
    return SiteIndex(catalog, tenants, refused)


# --- 2. the catalog ----------------------------------------------------------------------
def _catalog_tables() -> set[str]:
    connections[DEFAULT_DB_ALIAS].ensure_connection()
    return set(connections[DEFAULT_DB_ALIAS].introspection.table_names())


def _catalog_is_empty() -> bool:
    tables = _catalog_tables()
    if "tenancy_tenant" not in tables:
        return True
    return not Tenant.objects.exists() and not Backup.objects.exists()


def _empty_catalog_storage() -> DatabaseRef:
    """Make the catalog database empty (it holds nothing: checked by the caller) and
    return where a dump goes."""
    entry = settings.DATABASES[DEFAULT_DB_ALIAS]
    ref = DatabaseRef.from_entry(entry)
    connections[DEFAULT_DB_ALIAS].close()
    if ref.engine == "postgresql":
        from oxygis.tenancy.engines.postgresql import empty_public_schema

        close_idle_connections()  # nothing of this process keeps the old tables open
        empty_public_schema(entry)
    else:
        path = Path(ref.name)
        for each in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            each.unlink(missing_ok=True)
    return ref


def restore_catalog(site: Site, index: SiteIndex, keys, progress: Progress) -> str:
    """Put the newest restorable catalog backup in place; returns its id, or "" when none
    could be restored (the catalog is then migrated empty)."""
    from .sources import WrongKey, check_restored, restore_stream

    for manifest in index.catalog:
        backup = Backup(
            id=uuid.UUID(manifest["backup_id"]),
            target=CATALOG_TARGET,
            label=CATALOG_TARGET,
            engine=manifest["engine"],
            started_at=parse_datetime(manifest["started_at"]),
            sha256=manifest["sha256"],
            manifest=manifest,
            state=Backup.GOOD,
        )
        if backup.engine != DatabaseRef.from_entry(settings.DATABASES["default"]).engine:
            progress(f"catalog backup {backup.short_id} is {backup.engine}: skipped")
            continue
        ref = _empty_catalog_storage()
        try:
            restore_stream(
                backup,
                ref,
                lambda: None,
                _empty_catalog_storage,
                sites=[site],
                keys=keys,
                progress=progress,
                mark=False,
            )
            check_restored(ref, manifest)
        except WrongKey:
            raise  # no backup would open either: say so now, change nothing more
        except BackupError as exc:
            progress(f"catalog backup {backup.short_id} not usable: {one_line(exc)}")
            log.warning("dr: catalog backup %s not usable: %s", backup.short_id, one_line(exc))
            _empty_catalog_storage()
            continue
        connections[DEFAULT_DB_ALIAS].close()
        call_command("migrate", interactive=False, verbosity=0)
        progress(f"catalog restored from backup {backup.short_id} of {manifest['started_at']}")
        return backup.id.hex
    _empty_catalog_storage()
    call_command("migrate", interactive=False, verbosity=0)
    progress("no catalog backup could be restored: index rebuilt from the manifests")
    return ""


def _forget_the_old_platform() -> None:
    """What the restored catalog says about processes of the lost platform is void:
    their leases (so that nothing waits for them) and their running jobs."""
    from .models import Lease, Restore

    Lease.objects.all().delete()
    Restore.objects.filter(state__in=[Restore.QUEUED, Restore.RUNNING]).update(
        state=Restore.FAILED,
        finished_at=timezone.now(),
        detail="interrupted by the disaster the platform was rebuilt from",
    )


def merge_manifests(index: SiteIndex, site: Site) -> int:
    """Backups (and their tenants) on the site that the catalog does not know: added from
    their signed manifests, degraded until the worker re-syncs them to every site."""
    known = {b.hex for b in Backup.objects.values_list("id", flat=True)}
    plans = {p.code: p for p in Plan.objects.all()}
    server = default_server()
    added = 0
    for manifest in sorted(index.tenants, key=lambda m: m["started_at"]):
        if manifest["backup_id"] in known:
            continue
        about = manifest.get("tenant") or {}
        tenant = Tenant.objects.filter(id=about.get("id")).first()
        if tenant is None:
            plan = plans.get(about.get("plan")) or plans[Plan.PAID]
            tenant = Tenant(
                id=uuid.UUID(about["id"]),
                slug=about["slug"],
                name=about.get("name") or about["slug"],
                plan=plan,
                database_server=server,
                state=Tenant.RECOVERING,
            )
            tenant.db_name = database_name(tenant)
            tenant.save(force_insert=True)
            log.warning(
                "dr: tenant %s was unknown to the catalog: added from its backups", tenant.slug
            )
        backup = Backup.objects.create(
            id=uuid.UUID(manifest["backup_id"]),
            target=manifest["target"],
            tenant=tenant,
            label=tenant.slug,
            engine=manifest["engine"],
            database=tenant.db_name,
            state=Backup.DEGRADED,
            started_at=parse_datetime(manifest["started_at"]),
            finished_at=parse_datetime(manifest["finished_at"]),
            dump_bytes=manifest["dump_bytes"],
            stored_bytes=manifest["stored_bytes"],
            sha256=manifest["sha256"],
            manifest=manifest,
        )
        BackupCopy.objects.create(backup=backup, site=site.name)
        added += 1
    return added


# --- 3. the tenants ----------------------------------------------------------------------
def _plan_rank(order: tuple[str, ...]) -> Callable[[str], int]:
    return lambda code: order.index(code) if code in order else len(order)


def drill_sample(tenants: list, size: int, rank, seed: int) -> list:
    """A drill's tenants: the first of each plan in restore order, then others at random
    (so that every kind of tenant is rehearsed, and over time every tenant)."""
    by_plan: dict[str, list] = {}
    for tenant in sorted(tenants, key=lambda t: (rank(t.plan.code), t.slug)):
        by_plan.setdefault(tenant.plan.code, []).append(tenant)
    chosen = [group[0] for group in by_plan.values()][:size]
    rest = [t for t in tenants if t not in chosen]
    random.Random(seed).shuffle(rest)  # noqa: S311 # nosec B311 # a sample, not a secret
    return chosen + rest[: max(0, size - len(chosen))]


def plan_items(recovery: Recovery, index: SiteIndex, order: tuple[str, ...]) -> None:
    """One row per tenant to bring back, with the backup it comes back from: its newest
    good or degraded backup whose signed manifest is on the site (grouped queries, not
    one per tenant). A drill (``recovery.sample``) brings back only a sample."""
    on_site = {uuid.UUID(m["backup_id"]) for m in index.tenants}
    newest: dict[str, tuple] = {}  # target -> (backup id, taken at)
    restorable = Backup.objects.filter(state__in=[Backup.GOOD, Backup.DEGRADED])
    for backup_id, target, taken in restorable.order_by("started_at").values_list(
        "id", "target", "started_at"
    ):
        if backup_id in on_site:
            newest[target] = (backup_id, taken)  # later ones replace earlier ones
    existing = set(recovery.tenants.values_list("tenant_id", flat=True))
    rank = _plan_rank(order)
    tenants = [
        t
        for t in Tenant.objects.filter(state__in=Tenant.SERVED).select_related("plan")
        if t.id not in existing
    ]
    if recovery.sample:
        tenants = drill_sample(tenants, recovery.sample, rank, recovery.id.int)
    items = []
    for tenant in tenants:
        backup_id, taken = newest.get(tenant.id.hex, (None, None))
        items.append(
            RecoveredTenant(
                recovery=recovery,
                tenant=tenant,
                slug=tenant.slug,
                plan=tenant.plan.code,
                rank=rank(tenant.plan.code),
                state_after=tenant.state if tenant.state in Tenant.EXISTING else Tenant.ACTIVE,
                backup_id=backup_id,
                backup_taken_at=taken,
                rpo_target_hours=tenant.plan.rpo_hours,
                rto_target_hours=tenant.plan.rto_hours,
                state=RecoveredTenant.PENDING if backup_id else RecoveredTenant.FAILED,
                error="" if backup_id else "no backup of this tenant on the site",
            )
        )
    RecoveredTenant.objects.bulk_create(items)
    # Nobody is served old or missing data meanwhile: 503 "being restored".
    Tenant.objects.filter(pk__in=[t.pk for t in tenants]).update(state=Tenant.RECOVERING)


def _onto_entry(url: str) -> dict:
    from oxygis.tenancy.servers import entry_from_url
    from oxygis.tenancy.tenants import TenantError

    try:
        return entry_from_url(url, "--onto")
    except TenantError as exc:
        raise RecoveryError(str(exc)) from None


def onto_server(url: str):
    """The PostgreSQL server named by ``--onto`` (registered once, accepting tenants).
    Its password never comes on the command line: PGPASSWORD (sealed in the catalog for
    later administration) or libpq's password file."""
    from oxygis.tenancy.servers import register_server
    from oxygis.tenancy.tenants import TenantError

    entry = _onto_entry(url)
    name = slugify(
        f"dr-{entry['HOST']}-{entry['PORT'] or '5432'}".replace(".", "-").replace(",", "-")
    )
    try:
        return register_server(name[:50], entry)
    except TenantError as exc:
        raise RecoveryError(f"--onto: {exc}") from None


def restore_one(item: RecoveredTenant, site: Site, keys) -> None:
    """Bring one tenant back onto the rebuild's server from ``item.backup``."""
    from .restore import _migrate
    from .sources import check_restored, restore_stream
    from .swaps import highest_known_order_number, raise_order_counter

    tenant = Tenant.objects.select_related("database_server", "plan").get(pk=item.tenant_id)
    backup = item.backup
    server = item.recovery.server or default_server()
    if backup.engine != server.engine:
        raise RecoveryError(
            f"its backup is a {backup.engine} dump and this machine's server is {server.engine}"
        )
    RecoveredTenant.objects.filter(pk=item.pk).update(
        state=RecoveredTenant.RESTORING, started_at=timezone.now(), error=""
    )
    engine = engine_for(server)
    # An earlier attempt (a killed rebuild) may have left storage behind: start clean.
    forget_tenant_database(tenant)
    tenant.database_server = server
    tenant.db_name = database_name(tenant)
    engine.drop_database(tenant)
    tenant.db_password_sealed = engine.create_tenant_storage(tenant)
    tenant.save(update_fields=["database_server", "db_name", "db_password_sealed", "updated_at"])
    entry = engine.tenant_entry(tenant)
    ref = DatabaseRef.from_entry(entry)

    def prepare():
        if ref.engine == "postgresql" and not engine.database_exists(tenant):
            engine.create_named_database(tenant.db_name, tenant)

    def discard():
        forget_tenant_database(tenant)
        engine.drop_named_database(tenant.db_name)

    restore_stream(backup, ref, prepare, discard, sites=[site], keys=keys)
    check_restored(ref, backup.manifest)
    _migrate(entry)
    engine.protect_audit(tenant)
    distrust(entry, tenant, backup.started_at, fresh_copy=False)
    raise_order_counter(entry, highest_known_order_number(tenant))
    forget_tenant_database(tenant)
    now = timezone.now()
    Tenant.objects.filter(pk=tenant.pk).update(state=item.state_after, updated_at=now)
    recovery = item.recovery
    RecoveredTenant.objects.filter(pk=item.pk).update(
        state=RecoveredTenant.DONE,
        finished_at=now,
        rpo_seconds=int((recovery.started_at - backup.started_at).total_seconds()),
        rto_seconds=int((now - recovery.started_at).total_seconds()),
    )


def restore_tenants(recovery: Recovery, site: Site, keys, jobs: int, progress: Progress) -> None:
    """Every pending tenant of ``recovery``, ``jobs`` at a time, in plan order."""
    items = list(
        recovery.tenants.filter(state__in=[RecoveredTenant.PENDING, RecoveredTenant.RESTORING])
        .select_related("backup", "recovery", "recovery__server")
        .order_by("rank", "slug")
    )
    total, done, failed = len(items), [0], [0]
    lock = threading.Lock()

    def one(item: RecoveredTenant) -> None:
        try:
            restore_one(item, site, keys)
        except Exception as exc:
            RecoveredTenant.objects.filter(pk=item.pk).update(
                state=RecoveredTenant.FAILED, finished_at=timezone.now(), error=one_line(exc)[:2000]
            )
            log.error("dr: tenant %s not restored: %s", item.slug, one_line(exc))
            with lock:
                failed[0] += 1
                progress(f"[{done[0] + failed[0]}/{total}] {item.slug}: FAILED: {one_line(exc)}")
        else:
            with lock:
                done[0] += 1
                progress(f"[{done[0] + failed[0]}/{total}] {item.slug} ({item.plan}): back")
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(one, items))


# --- the whole ---------------------------------------------------------------------------
def rebuild(
    site_url: str,
    *,
    plan_order: tuple[str, ...] = DEFAULT_PLAN_ORDER,
    jobs: int = 2,
    onto: str | None = None,
    sample: int = 0,
    progress: Progress | None = None,
) -> Recovery:
    say = progress or (lambda text: None)
    if onto:
        _onto_entry(onto)  # refused before anything changes
    site = configured_sites([site_url])[0]
    keys = configured_keys()
    marker = _marker()
    recovery = None
    if "backups_recovery" in _catalog_tables():
        # The last rebuild, if some of it is left to do (stopped, or tenants failed).
        recovery = Recovery.objects.exclude(state=Recovery.DONE).order_by("-started_at").first()
    if recovery is None:
        if not marker.exists() and not _catalog_is_empty():
            raise RecoveryError(
                "the catalog already holds tenants or backups and no rebuild is in progress: "
                "dr rebuild only runs onto an empty platform (fresh settings and databases)"
            )
        started = timezone.now()
        index = index_site(site, keys, say)  # before anything changes: it may refuse
        if marker.exists():
            started = parse_datetime(json.loads(marker.read_text())["started_at"]) or started
        else:
            marker.write_text(json.dumps({"site": site.name, "started_at": started.isoformat()}))
        catalog_backup = restore_catalog(site, index, keys, say)
        # All or nothing: killed before the commit, the marker makes the next run start
        # over from the catalog; after it, the Recovery row and its tenants say what is left.
        with transaction.atomic(using=DEFAULT_DB_ALIAS):
            _forget_the_old_platform()
            recovery = Recovery.objects.create(
                site=site.name,
                started_at=started,
                catalog_backup=catalog_backup,
                catalog_back_at=timezone.now(),
                sample=sample,
                manifests_refused=len(index.refused),
                detail="\n".join(index.refused)[:10000],
            )
            _point_servers_here()
            if onto:
                recovery.server = onto_server(onto)
                recovery.save(update_fields=["server"])
            recovery.manifests_merged = merge_manifests(index, site)
            recovery.save(update_fields=["manifests_merged"])
            plan_items(recovery, index, plan_order)
        marker.unlink(missing_ok=True)
    else:
        say(f"continuing the rebuild started {recovery.started_at:%Y-%m-%d %H:%M:%S} UTC")
        recovery.tenants.filter(state=RecoveredTenant.FAILED, backup__isnull=False).update(
            state=RecoveredTenant.PENDING
        )
        Recovery.objects.filter(pk=recovery.pk).update(state=Recovery.RUNNING)
    restore_tenants(recovery, site, keys, jobs, say)
    left = recovery.tenants.exclude(state=RecoveredTenant.DONE).count()
    recovery.state = Recovery.DONE if left == 0 else Recovery.FAILED
    recovery.finished_at = timezone.now()
    recovery.save(update_fields=["state", "finished_at"])
    return recovery


def _point_servers_here() -> None:
    """The restored catalog describes the lost machine's database servers: this
    machine's settings say where tenants go now (SQLite: under this data folder;
    PostgreSQL: the settings' server, whose catalog tenant roles must not open)."""
    from oxygis.tenancy.dburl import is_postgresql
    from oxygis.tenancy.models import DatabaseServer

    catalog = settings.DATABASES[DEFAULT_DB_ALIAS]
    DatabaseServer.objects.filter(engine=DatabaseServer.SQLITE).update(path="tenants")
    if is_postgresql(catalog):
        DatabaseServer.objects.filter(name="primary").update(**server_fields(catalog))
        engine_for(default_server()).revoke_public_connect(catalog["NAME"])


def report_data(recovery: Recovery) -> dict:
    """The report as data (``oxygis dr status --json``, read by drills)."""

    def seconds(a, b):
        return (b - a).total_seconds() if a and b else None

    return {
        "site": recovery.site,
        "state": recovery.state,
        "started_at": recovery.started_at.isoformat(),
        "catalog_seconds": seconds(recovery.started_at, recovery.catalog_back_at),
        "sample": recovery.sample,
        "tenants": [
            {
                "slug": t.slug,
                "plan": t.plan,
                "state": t.state,
                "restore_seconds": seconds(t.started_at, t.finished_at),
                "rto_seconds": t.rto_seconds,
                "rpo_seconds": t.rpo_seconds,
                "rto_target_hours": t.rto_target_hours,
                "rpo_target_hours": t.rpo_target_hours,
                "error": t.error,
            }
            for t in recovery.tenants.order_by("rank", "slug")
        ],
    }


def report_lines(recovery: Recovery) -> list[str]:
    """The per-tenant report: backup time (achieved RPO) and time back (achieved RTO)
    against the plan's targets."""

    def hours(seconds):
        if seconds is None:
            return "-"
        return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.2f} h"

    source = (
        f"from backup {recovery.catalog_backup[:8]}"
        if recovery.catalog_backup
        else "rebuilt from manifests"
    )
    lines = [
        f"rebuild from {recovery.site} started {recovery.started_at:%Y-%m-%d %H:%M:%S} UTC: "
        f"{recovery.get_state_display().lower()}; catalog {source}, "
        f"{recovery.manifests_merged} backups merged, "
        f"{recovery.manifests_refused} manifests refused",
        f"{'tenant':<32} {'plan':<9} {'state':<9} {'backup taken':<17} "
        f"{'RPO':>9} {'RTO':>9}  targets RPO / RTO",
    ]
    for item in recovery.tenants.order_by("rank", "slug"):
        over = []
        if item.rpo_seconds is not None and item.rpo_seconds > item.rpo_target_hours * 3600:
            over.append("RPO missed")
        if item.rto_seconds is not None and item.rto_seconds > item.rto_target_hours * 3600:
            over.append("RTO missed")
        taken = f"{item.backup_taken_at:%Y-%m-%d %H:%M}" if item.backup_taken_at else "-"
        lines.append(
            f"{item.slug:<32} {item.plan:<9} {item.state:<9} {taken:<17} "
            f"{hours(item.rpo_seconds):>9} {hours(item.rto_seconds):>9}  "
            f"{item.rpo_target_hours} h / {item.rto_target_hours} h"
            + (f"  {', '.join(over)}" if over else "")
            + (f"  {item.error}" if item.error else "")
        )
    return lines
