"""Database servers: register one, open or close it to new tenants (where a new tenant
goes: databases.server_for_new_tenant)."""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured, ValidationError

from .databases import server_fields
from .dburl import parse_database_url
from .engines import EngineError, engine_for
from .models import DatabaseServer
from .tenants import TenantError


def entry_from_url(url: str, label: str) -> dict:
    """A server's settings entry from ``url``, its password from PGPASSWORD: a password
    on a command line would show in the process list and the shell's history."""
    try:
        entry = parse_database_url(url)
    except ImproperlyConfigured as exc:
        raise TenantError(f"{label}: {str(exc).replace('OXYGIS_DATABASE_URL ', '')}") from None
    if entry["PASSWORD"]:
        raise TenantError(
            f"{label}: no password on the command line (it would show in the process list "
            "and the shell's history): set PGPASSWORD or use ~/.pgpass"
        )
    entry["HOST"] = entry["HOST"] or "localhost"
    entry["PASSWORD"] = os.environ.get("PGPASSWORD", "")
    return entry


def register_server(
    name: str, entry: dict, *, region: str = "local", pooler: tuple[str, int] | None = None
) -> DatabaseServer:
    """Register (or update) PostgreSQL server ``name`` from ``entry`` (entry_from_url),
    open to new tenants. Its login must be able to create roles and databases; that is
    checked before anything is kept."""
    fields = {
        **server_fields(entry),
        "admin_database": entry["NAME"],
        "region": region,
        "pooler_host": pooler[0] if pooler else "",
        "pooler_port": pooler[1] if pooler else None,
        "accepts_new_tenants": True,
    }
    candidate = DatabaseServer(name=name, **fields)
    try:
        candidate.full_clean(exclude=["name"])
    except ValidationError as exc:
        raise TenantError(f"invalid server settings: {exc}") from None
    try:
        can = engine_for(candidate).can_provision()
    except EngineError as exc:
        raise TenantError(str(exc)) from None
    if not can:
        raise TenantError(f"the login of {name} needs CREATEROLE and CREATEDB")
    server, _ = DatabaseServer.objects.update_or_create(name=name, defaults=fields)
    return server


def set_accepting(name: str, accepting: bool) -> DatabaseServer:
    server = DatabaseServer.objects.filter(name=name).first()
    if server is None:
        raise TenantError(f"no database server {name!r} (see `oxygis server list`)")
    server.accepts_new_tenants = accepting
    server.save(update_fields=["accepts_new_tenants"])
    return server
