"""Open a tenant's database: register its connection alias and bind it as current."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import connections

from .context import binding_tenant, using_database
from .engines import engine_for, forget_alias, register_alias
from .guard import holding, outermost_hold
from .models import DatabaseServer


def register_tenant_database(tenant) -> str:
    """Make ``tenant.alias`` a usable connection alias in this process."""
    register_alias(tenant.alias, engine_for(tenant.database_server).tenant_entry(tenant))
    return tenant.alias


def forget_tenant_database(tenant) -> None:
    forget_alias(tenant.alias)


@contextmanager
def tenant_context(tenant) -> Iterator[str]:
    """Bind the tenant's database (and the tenant) for the enclosed unit of work.

    The unit of work holds the tenant's guard (tenancy/guard.py) from before its
    connection opens until after it is closed, so that a swap of the database waits for
    it; raises TenantBusy while one runs."""
    with binding_tenant(tenant), holding(tenant):
        alias = register_tenant_database(tenant)
        try:
            with using_database(alias):
                yield alias
        finally:
            if outermost_hold(tenant) and alias in connections.settings:
                # Nothing of this unit of work stays open on the database once its hold
                # is released (a swap may move the database right after).
                connections[alias].close()


@contextmanager
def open_database(entry: dict, prefix: str = "db") -> Iterator[str]:
    """Bind a database that is no tenant's live one (a restored copy, one kept by a
    swap) under a throwaway alias, closed and forgotten at the end."""
    alias = f"{prefix}_{secrets.token_hex(6)}"
    register_alias(alias, entry)
    try:
        with using_database(alias):
            yield alias
    finally:
        forget_alias(alias)


def default_server() -> DatabaseServer:
    """The server new tenants go to: the one described by the settings, created once.

    With OXYGIS_DATABASE_URL, tenants live on that PostgreSQL server (its login must be
    allowed to create roles and databases); without it, in SQLite files under var/.
    """
    from .sealing import seal

    catalog = settings.DATABASES["default"]
    if catalog["ENGINE"] == "django.db.backends.postgresql":
        server = DatabaseServer.objects.filter(name="primary").first()
        if server is None:
            server = DatabaseServer.objects.create(
                name="primary",
                engine=DatabaseServer.POSTGRESQL,
                host=catalog["HOST"],
                port=int(catalog["PORT"]) if catalog["PORT"] else None,
                admin_user=catalog["USER"],
                admin_password_sealed=seal(catalog["PASSWORD"]) if catalog["PASSWORD"] else "",
                options=catalog.get("OPTIONS", {}),
            )
            # Tenant roles log in to this server too: the catalog must not let them in.
            engine_for(server).revoke_public_connect(catalog["NAME"])
        return server
    server = DatabaseServer.objects.filter(name="local").first()
    if server is None:
        server = DatabaseServer.objects.create(
            name="local", engine=DatabaseServer.SQLITE, path=str(settings.VAR_DIR / "tenants")
        )
    return server
