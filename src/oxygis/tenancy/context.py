"""The current database: one context variable, set per unit of work.

The tenant middleware sets it for a request, ``--tenant`` for a command, a job for its
run. Code that reaches a tenant or local model with no current database gets
:class:`NoDatabaseContext`: there is no fallback to any other database (fail closed, C9).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

CATALOG = "default"

_current_database: ContextVar[str | None] = ContextVar("oxygis_database", default=None)
_current_tenant: ContextVar[object | None] = ContextVar("oxygis_tenant", default=None)


class NoDatabaseContext(RuntimeError):
    """A model was used while no database (tenant or catalog) was bound."""


def current_database() -> str:
    alias = _current_database.get()
    if alias is None:
        raise NoDatabaseContext(
            "no database is bound to this unit of work: run it inside tenant_context() "
            "or using_database() (a request, a --tenant command or a job does this)"
        )
    return alias


def bound_database() -> str | None:
    """The bound alias, or None; for code that only wants to know."""
    return _current_database.get()


@contextmanager
def using_database(alias: str) -> Iterator[str]:
    token = _current_database.set(alias)
    try:
        yield alias
    finally:
        _current_database.reset(token)


def bound_tenant():
    """The tenant bound to this unit of work, or None (for labels in logs, never access)."""
    return _current_tenant.get()


def current_tenant():
    """The tenant whose database is bound (``tenant_context``); refuses if none is."""
    tenant = _current_tenant.get()
    if tenant is None:
        raise NoDatabaseContext("no tenant is bound to this unit of work")
    return tenant


@contextmanager
def binding_tenant(tenant) -> Iterator[object]:
    token = _current_tenant.set(tenant)
    try:
        yield tenant
    finally:
        _current_tenant.reset(token)


def release_catalog() -> None:
    """Give this thread's catalog connection back (outside a transaction): with pooled
    connections (tenancy/pool.py) a request need not keep one while it works."""
    from django.db import connections

    connection = connections[CATALOG]
    if not connection.in_atomic_block:
        connection.close()
