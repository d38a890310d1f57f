"""Database engines: how a tenant database is created from the template, opened and
dropped, on SQLite (embedded default) and PostgreSQL (production)."""

from __future__ import annotations

import contextlib
import threading
from typing import Protocol

from django.core.management import call_command
from django.db import connections
from django.db.migrations.executor import MigrationExecutor

TEMPLATE_ALIAS = "tenant_template"

# Templates already checked in this process: migrations do not change at run time.
_current_templates: set[tuple[str, int]] = set()


class EngineError(RuntimeError):
    """A database operation failed; the message is safe to show an operator."""


def configured(entry: dict) -> dict:
    """A complete DATABASES entry (Django's defaults filled in)."""
    return connections.configure_settings({"default": dict(entry)})["default"]


_settings_lock = threading.Lock()


def change_aliases(add: dict[str, dict] | None = None, remove=()) -> None:
    """Register and forget connection aliases, for every thread of the process.

    Never in place: Django iterates ``connections.settings`` at the end of every request
    (``close_old_connections``) while other threads register tenants, and a dict changed
    during an iteration raises. A changed copy is published instead; a thread iterating
    keeps the one it started on."""
    with _settings_lock:
        updated = dict(connections.settings)
        for alias, entry in (add or {}).items():
            updated.setdefault(alias, configured(entry))
        for alias in remove:
            updated.pop(alias, None)
        connections.settings = updated


def register_alias(alias: str, entry: dict) -> None:
    if alias not in connections.settings:
        change_aliases(add={alias: entry})


def forget_alias(alias: str) -> None:
    """Close this thread's connection to ``alias`` and forget its settings."""
    if alias in connections.settings:
        try:
            connections[alias].close()
        finally:
            with contextlib.suppress(AttributeError):  # never opened in this thread
                del connections[alias]
            change_aliases(remove=[alias])


class Engine(Protocol):
    """What a database engine does for provisioning, serving and restores: the interface
    both engines (``PostgreSQLEngine``, ``SQLiteEngine``) implement and the only calls the
    rest of the code makes. The steps each engine must provide fail loudly if one does
    not; ``ensure_template`` is shared."""

    def __init__(self, server):
        self.server = server

    # --- to implement ---------------------------------------------------------------
    def tenant_entry(self, tenant) -> dict:
        raise NotImplementedError

    def template_entry(self) -> dict:
        raise NotImplementedError

    def create_template_storage(self) -> None:
        """Create the (empty) template database if it does not exist."""
        raise NotImplementedError

    def create_database(self, tenant) -> str:
        """Create the tenant's database from the template; return the sealed secret."""
        raise NotImplementedError

    def drop_database(self, tenant) -> None:
        raise NotImplementedError

    def database_exists(self, tenant) -> bool:
        raise NotImplementedError

    def end_serving_sessions(self, tenant) -> int:
        """End the sessions that serve the tenant's requests, in every process and host
        (a suspension); return how many. Nothing to do where none outlive a request."""
        return 0

    def template_lock(self):
        """A lock serialising template migration and copies (across processes)."""
        raise NotImplementedError

    # --- restores (backups/restore.py) ------------------------------------------------
    def create_tenant_storage(self, tenant) -> str:
        """An empty database for the tenant (a restore fills it); return the sealed secret."""
        raise NotImplementedError

    def entry_named(self, tenant, name: str | None) -> dict:
        """The tenant's connection entry, for another database of the tenant's (``name``),
        or, with ``tenant`` None, the server's administrative entry."""
        raise NotImplementedError

    def create_named_database(self, name: str, owner_tenant=None) -> None:
        """An empty database beside the tenant's (owned by its role), or a scratch one."""
        raise NotImplementedError

    def drop_named_database(self, name: str) -> None:
        raise NotImplementedError

    def swap_databases(self, tenant, replacement: str, previous: str) -> None:
        """Make ``replacement`` the tenant's database; keep the old one as ``previous``
        (no connections allowed to it). The tenant's guard must be drained meanwhile."""
        raise NotImplementedError

    def finish_or_undo_swap(self, tenant, replacement: str, previous: str) -> bool:
        """A swap was interrupted: finish it if it had begun and say True, or undo what
        was prepared and say False."""
        raise NotImplementedError

    def drop_prefixed(self, prefix: str) -> list[str]:
        """Drop every database (and role) named ``prefix``...: what a DR drill made on a
        server. Only PostgreSQL has such names; a drill on SQLite removes its folder."""
        raise NotImplementedError

    # --- the audit trail (C17) ---------------------------------------------------------
    def protect_audit(self, tenant, name: str | None = None) -> None:
        """Leave the tenant's role (on ``name``, else its live database) able to read and
        add audit events, never to change or delete them. Engines without roles: no-op;
        there the hash chain and signed digests still catch any change."""

    def release_audit(self, tenant, name: str | None = None) -> None:
        """Give the audit tables back to the tenant's role for the length of a migration
        that changes them (``protect_audit`` follows)."""

    def prune_audit(self, entry: dict, before_seq: int) -> int:
        """Delete the audit events numbered below ``before_seq`` from the database of
        ``entry``, with the rights the tenant's role lacks; return how many."""
        raise NotImplementedError

    # --- shared ---------------------------------------------------------------------
    def ensure_template(self, *, verbosity: int = 0) -> None:
        """Bring the template database to the current migrations (a no-op when it is)."""
        key = (self.server.engine, self.server.pk)
        if key in _current_templates:
            return
        self.create_template_storage()
        register_alias(TEMPLATE_ALIAS, self.template_entry())
        try:
            executor = MigrationExecutor(connections[TEMPLATE_ALIAS])
            targets = executor.loader.graph.leaf_nodes()
            if executor.migration_plan(targets):
                call_command(
                    "migrate", database=TEMPLATE_ALIAS, interactive=False, verbosity=verbosity
                )
        finally:
            # PostgreSQL refuses to copy a template that has open connections.
            forget_alias(TEMPLATE_ALIAS)
        _current_templates.add(key)


def engine_for(server) -> Engine:
    from .postgresql import PostgreSQLEngine
    from .sqlite import SQLiteEngine

    if server.engine == server.SQLITE:
        return SQLiteEngine(server)
    if server.engine == server.POSTGRESQL:
        return PostgreSQLEngine(server)
    raise EngineError(f"unknown database engine {server.engine!r}")
