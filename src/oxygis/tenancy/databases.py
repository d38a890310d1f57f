"""Open a tenant's database: register its connection alias and bind it as current."""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import connections

from .context import binding_tenant, using_database
from .dburl import POOLED_ENGINE, is_postgresql
from .engines import change_aliases, engine_for, forget_alias, register_alias
from .guard import holding
from .models import DatabaseServer
from .pool import budget, pool_key

# Connection settings computed for tenants, kept for reuse (least recently used go):
# what a process holds per tenant stays bounded, however many tenants it serves.
MAX_REGISTERED = 512

_entries: OrderedDict[str, dict] = OrderedDict()
# Units of work of this process using each alias: an alias is registered with Django
# only while some use it. Django walks every registered alias twice per request
# (close_old_connections), so the walk stays as short as the work in flight.
_in_use: dict[str, int] = {}
_registry_lock = threading.Lock()
_depth = threading.local()  # alias -> nesting of tenant_context in this thread


def serving_entry(server: DatabaseServer, entry: dict) -> dict:
    """A tenant database's entry as units of work use it: on PostgreSQL, pooled within
    the process's budget, guarded (tenancy/postgresql/base.py), and through the server's
    connection pooler when it has one."""
    if not is_postgresql(entry):
        return entry
    entry = {**entry, "ENGINE": POOLED_ENGINE, "OXYGIS_BUDGET": "tenants", "OXYGIS_GUARD": True}
    if server.pooler_host:
        entry["HOST"], entry["PORT"] = server.pooler_host, str(server.pooler_port or 6432)
        entry["OXYGIS_POOLER"] = True
    return entry


def _entry_for(tenant) -> dict:
    alias = tenant.alias
    with _registry_lock:
        entry = _entries.get(alias)
    if entry is None:
        server = tenant.database_server
        entry = serving_entry(server, engine_for(server).tenant_entry(tenant))
    with _registry_lock:
        _entries[alias] = entry
        _entries.move_to_end(alias)
        while len(_entries) > MAX_REGISTERED:
            _entries.popitem(last=False)
    return entry


def register_tenant_database(tenant) -> str:
    """Make ``tenant.alias`` a usable connection alias in this process, for one unit of
    work (``unregister_tenant_database`` ends it)."""
    alias, entry = tenant.alias, _entry_for(tenant)
    with _registry_lock:
        _in_use[alias] = _in_use.get(alias, 0) + 1
        if alias not in connections.settings:
            change_aliases(add={alias: entry})
    return alias


def unregister_tenant_database(alias: str) -> None:
    with _registry_lock:
        left = _in_use.get(alias, 1) - 1
        if left > 0:
            _in_use[alias] = left
            return
        _in_use.pop(alias, None)
        change_aliases(remove=[alias])


def _close_idle(tenant) -> None:
    with _registry_lock:
        entry = _entries.get(tenant.alias) or connections.settings.get(tenant.alias)
    if entry is not None and entry["ENGINE"] == POOLED_ENGINE:
        budget("tenants").close_key(pool_key(entry))


def forget_tenant_database(tenant) -> None:
    """Close this thread's connection, the process's idle ones, and forget the settings
    (the tenant's database or password changed)."""
    _close_idle(tenant)
    forget_alias(tenant.alias)
    with _registry_lock:
        _entries.pop(tenant.alias, None)


def release_tenant_connections(tenant) -> None:
    """Close the process's idle connections to the tenant's database (suspended)."""
    _close_idle(tenant)


def _give_back_here(alias: str) -> None:
    """Give this thread's connection back and forget its wrapper: what a thread holds
    stays flat, whatever the number of tenants it has served."""
    conn = getattr(connections._connections, alias, None)
    if conn is not None:
        conn.close()
        delattr(connections._connections, alias)


@contextmanager
def tenant_context(tenant) -> Iterator[str]:
    """Bind the tenant's database (and the tenant) for the enclosed unit of work.

    The unit of work holds the tenant's guard (tenancy/guard.py) while it uses the
    database, so that a swap of the database waits for it; raises TenantBusy while one
    runs. Its connection is given back when it ends."""
    with binding_tenant(tenant), holding(tenant):
        alias = register_tenant_database(tenant)
        depth = _depth.__dict__
        depth[alias] = depth.get(alias, 0) + 1
        try:
            with using_database(alias):
                yield alias
        finally:
            depth[alias] -= 1
            if not depth[alias]:
                del depth[alias]
                # Nothing of this unit of work stays open on the database once it ends
                # (a swap may move the database right after).
                try:
                    _give_back_here(alias)
                finally:
                    unregister_tenant_database(alias)
            else:
                unregister_tenant_database(alias)


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


def server_fields(entry: dict) -> dict:
    """A PostgreSQL DatabaseServer's fields for the administrative login of ``entry``
    (Django settings): where it is, who it is, its password sealed."""
    from .sealing import seal

    return {
        "engine": DatabaseServer.POSTGRESQL,
        "host": entry["HOST"],
        "port": entry["PORT"] or "",
        "admin_user": entry["USER"],
        "admin_password_sealed": seal(entry["PASSWORD"]) if entry["PASSWORD"] else "",
        "options": entry.get("OPTIONS", {}),
    }


def default_server() -> DatabaseServer:
    """The server new tenants go to: the one described by the settings, created once.

    With OXYGIS_DATABASE_URL, tenants live on that PostgreSQL server (its login must be
    allowed to create roles and databases); without it, in SQLite files under var/.
    """
    catalog = settings.DATABASES["default"]
    if is_postgresql(catalog):
        # get_or_create: two processes provisioning the first tenants at once must
        # agree on one server row (the loser of the race reads the winner's).
        server, created = DatabaseServer.objects.get_or_create(
            name="primary", defaults=server_fields(catalog)
        )
        if created:
            # Tenant roles log in to this server too: the catalog must not let them in.
            engine_for(server).revoke_public_connect(catalog["NAME"])
        # The pooler follows the settings (OXYGIS_DATABASE_POOLER), set or taken away.
        pooler_host, pooler_port = settings.DATABASE_POOLER or ("", None)
        if (server.pooler_host, server.pooler_port) != (pooler_host, pooler_port):
            server.pooler_host, server.pooler_port = pooler_host, pooler_port
            server.save(update_fields=["pooler_host", "pooler_port"])
        return server
    server, _ = DatabaseServer.objects.get_or_create(
        name="local", defaults={"engine": DatabaseServer.SQLITE, "path": "tenants"}
    )
    return server


def server_for_new_tenant() -> DatabaseServer:
    """Where a new tenant goes: of the servers open to new tenants of the configured kind
    (PostgreSQL with OXYGIS_DATABASE_URL, else SQLite), the one holding the fewest."""
    from django.db.models import Count

    configured = default_server()
    open_servers = (
        DatabaseServer.objects.filter(engine=configured.engine, accepts_new_tenants=True)
        .annotate(held=Count("tenants"))
        .order_by("held", "name")
    )
    return open_servers.first() or configured
