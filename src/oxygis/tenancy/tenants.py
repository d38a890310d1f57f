"""The foundation of a tenant's life: its name, catalog row and database (register,
discard, drop), suspend, resume, migrate. Provisioning a usable tenant (its first
administrator) and the audited life cycle are the platform's (platform/provisioning.py,
platform/lifecycle.py): this module imports no domain app.

Views and commands call these and stay thin. Errors meant for the operator are TenantError with a
one-line message.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.utils import timezone

from oxygis.core.text import CONTROL_CHARACTERS

from .context import CATALOG
from .databases import (
    forget_tenant_database,
    release_tenant_connections,
    tenant_context,
)
from .engines import EngineError, engine_for
from .models import Plan, Tenant

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$")
# Host names the platform keeps for itself or that invite phishing.
RESERVED_SLUGS = frozenset(
    [
        "admin",
        "administrator",
        "api",
        "app",
        "apps",
        "assets",
        "auth",
        "autodiscover",
        "autoconfig",
        "billing",
        "blog",
        "cdn",
        "console",
        "dashboard",
        "db",
        "dev",
        "docs",
        "ftp",
        "help",
        "imap",
        "internal",
        "login",
        "logout",
        "mail",
        "media",
        "mx",
        "ns",
        "ns1",
        "ns2",
        "oxygis",
        "platform",
        "pop",
        "pop3",
        "portal",
        "postgres",
        "root",
        "security",
        "smtp",
        "sso",
        "staff",
        "static",
        "status",
        "support",
        "system",
        "test",
        "webmail",
        "www",
    ]
)


class TenantError(Exception):
    """An operator-facing error: one line, safe to print."""


def validate_slug(slug: str) -> str:
    if not SLUG_RE.match(slug or ""):
        raise TenantError(
            f"invalid slug {slug!r}: use 3-40 characters among a-z, 0-9 and '-', "
            "starting and ending with a letter or digit"
        )
    if "--" in slug:
        raise TenantError(f"invalid slug {slug!r}: '--' is not allowed")
    if slug in RESERVED_SLUGS:
        raise TenantError(f"slug {slug!r} is reserved")
    return slug


def get_tenant(slug: str) -> Tenant:
    try:
        return Tenant.objects.select_related("plan", "database_server").get(slug=slug)
    except Tenant.DoesNotExist:
        raise TenantError(f"no tenant {slug!r}") from None


class SlugTaken(TenantError):
    pass


def register_tenant(slug: str, *, name: str, plan: Plan, server) -> Tenant:
    """A new tenant's catalog row (state provisioning) and database name, the first step
    of provisioning and of a side-by-side restore; SlugTaken if the slug is in use."""
    validate_slug(slug)
    if not name.strip():
        raise TenantError("the tenant needs a display name (--name)")
    if CONTROL_CHARACTERS.search(name):
        raise TenantError("the display name must be one line, without control characters")
    if not server.accepts_new_tenants:
        raise TenantError(f"database server {server.name} accepts no new tenants")
    tenant = Tenant(slug=slug, name=name.strip(), plan=plan, database_server=server)
    tenant.db_name = database_name(tenant)
    try:
        with transaction.atomic(using=CATALOG):
            tenant.save(force_insert=True)
    except IntegrityError:
        raise SlugTaken(f"a tenant {slug!r} already exists") from None
    return tenant


def database_name(tenant: Tenant) -> str:
    """A new tenant's database (and role) name: from its id, never from user input (C9)."""
    return f"{settings.DB_PREFIX}t_{tenant.id.hex}"


def discard_tenant(tenant: Tenant, engine) -> None:
    """Remove a tenant that never became active: database, role and catalog row."""
    forget_tenant_database(tenant)
    try:
        engine.drop_database(tenant)
    finally:
        Tenant.objects.filter(pk=tenant.pk).delete()


def drop_tenant(tenant: Tenant) -> None:
    """Drop the tenant's database, its role and its catalog row. Irreversible."""
    engine = engine_for(tenant.database_server)
    forget_tenant_database(tenant)
    engine.drop_database(tenant)
    tenant.delete()


def suspend_tenant(tenant: Tenant) -> None:
    if tenant.state != Tenant.ACTIVE:
        raise TenantError(f"tenant {tenant.slug} is {tenant.state}, not active")
    tenant.state, tenant.suspended_at = Tenant.SUSPENDED, timezone.now()
    tenant.save(update_fields=["state", "suspended_at", "updated_at"])
    # Its pooled connections close now, here and in every other process and host.
    release_tenant_connections(tenant)
    engine_for(tenant.database_server).end_serving_sessions(tenant)


def resume_tenant(tenant: Tenant) -> None:
    if tenant.state != Tenant.SUSPENDED:
        raise TenantError(f"tenant {tenant.slug} is {tenant.state}, not suspended")
    tenant.state, tenant.suspended_at = Tenant.ACTIVE, None
    tenant.save(update_fields=["state", "suspended_at", "updated_at"])


ZONE = re.compile(r"^[a-z0-9][a-z0-9-]{0,49}$")


def set_replica_zones(tenant: Tenant, zones: list[str]) -> None:
    """Record the zones where the tenant's database has extra read replicas (none: [])."""
    bad = [zone for zone in zones if not ZONE.match(zone)]
    if bad:
        raise TenantError(f"invalid zone name {bad[0]!r}: a-z, 0-9 and '-', up to 50")
    tenant.replica_zones = sorted(set(zones))
    tenant.save(update_fields=["replica_zones", "updated_at"])


_all_migrations: set[tuple[str, str]] | None = None


def known_migrations() -> set[tuple[str, str]]:
    """(app, name) of every migration on disk (read once per process)."""
    global _all_migrations
    if _all_migrations is None:
        from django.db.migrations.loader import MigrationLoader

        _all_migrations = set(MigrationLoader(None, ignore_no_migrations=True).graph.nodes)
    return _all_migrations


def migrate_tenant(tenant: Tenant, *, verbosity: int = 0) -> bool:
    """Apply pending migrations to one tenant database (idempotent, so resumable).
    Returns False when there was nothing to apply: one query tells, and nothing else
    runs (no migrate command, no post-migrate handlers)."""
    if tenant.state == Tenant.PROVISIONING:
        raise TenantError(f"tenant {tenant.slug} was never fully provisioned; drop it")
    from django.db import connections
    from django.db.migrations.recorder import MigrationRecorder

    with tenant_context(tenant) as alias:
        applied = set(MigrationRecorder(connections[alias]).applied_migrations())
        if known_migrations() <= applied:
            return False
        pending = known_migrations() - applied
        engine = engine_for(tenant.database_server)
        # The audit table is not the tenant role's own (C17): lent back for a migration
        # that changes it, taken back after, whatever happened.
        lend = any(app == "audit" for app, _ in pending)
        if lend:
            engine.release_audit(tenant)
        try:
            call_command("migrate", database=alias, interactive=False, verbosity=verbosity)
        finally:
            if lend:
                engine.protect_audit(tenant)
    return True


__all__ = [
    "EngineError",
    "TenantError",
    "database_name",
    "discard_tenant",
    "drop_tenant",
    "get_tenant",
    "migrate_tenant",
    "resume_tenant",
    "suspend_tenant",
    "validate_slug",
]
