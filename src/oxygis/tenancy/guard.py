"""The per-tenant guard: every unit of work on a tenant's database holds it, shared; a
swap of that database (a live restore, a rollback) drains it, exclusive, first.

Threat: an acknowledged write lost in a swap. A request that passed the "suspended?"
check an instant before the swap would otherwise commit into the database (or, on
SQLite, the write-ahead log) that the swap is moving away. With the guard, the swap
waits until no request, command or job holds the tenant (across processes and hosts),
or gives up after a timeout and changes nothing.

* PostgreSQL catalog: session advisory locks on the catalog (shared by every host): a
  unit of work takes ``pg_try_advisory_lock_shared`` on its catalog connection, a swap
  waits for ``pg_advisory_lock`` on a connection of its own, with a lock timeout.
* SQLite catalog (the embedded mode, one host): ``flock`` on a file per tenant.

A unit of work never waits: a drained (or draining) tenant answers TenantBusy at once,
which the middleware turns into a 503 with Retry-After.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connections

from .context import CATALOG

# First key of our advisory locks ("oxyg"): nothing else of ours uses this class id.
_LOCK_CLASS = 0x6F787967


class TenantBusy(RuntimeError):
    """The tenant's database is being swapped: try again in a moment."""


class DrainTimeout(RuntimeError):
    """Units of work still held the tenant when the drain's time was up."""


_held = threading.local()  # tenant id -> (depth, release): nested holds take it once


def _postgresql_catalog() -> bool:
    return settings.DATABASES[CATALOG]["ENGINE"] == "django.db.backends.postgresql"


def _lock_keys(tenant) -> tuple[int, int]:
    digest = hashlib.sha256(tenant.id.bytes).digest()
    return _LOCK_CLASS, int.from_bytes(digest[:4], "big", signed=True)


def _lock_file(tenant) -> Path:
    folder = Path(settings.VAR_DIR) / "guards"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder / f"{tenant.id.hex}.lock"


def _take_shared(tenant):
    """Take the shared hold or raise TenantBusy; return its release function."""
    if _postgresql_catalog():
        keys = _lock_keys(tenant)
        connection = connections[CATALOG]
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock_shared(%s, %s)", keys)
            taken = cursor.fetchone()[0]
        if not taken:
            raise TenantBusy(f"tenant {tenant.slug} is being restored")

        def release():
            if connection.connection is None:
                return  # the connection is gone, and its session's locks with it
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock_shared(%s, %s)", keys)

        return release
    fd = os.open(_lock_file(tenant), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise TenantBusy(f"tenant {tenant.slug} is being restored") from None

    def release():
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    return release


@contextmanager
def holding(tenant) -> Iterator[None]:
    """Hold the tenant's guard, shared, for a unit of work (raises TenantBusy)."""
    held = getattr(_held, "tenants", None)
    if held is None:
        held = _held.tenants = {}
    key = tenant.id.hex
    if key in held:
        depth, release = held[key]
        held[key] = (depth + 1, release)
    else:
        held[key] = (1, _take_shared(tenant))
    try:
        yield
    finally:
        depth, release = held[key]
        if depth > 1:
            held[key] = (depth - 1, release)
        else:
            del held[key]
            release()


def outermost_hold(tenant) -> bool:
    """Is the hold being released the last one of this thread on ``tenant``?"""
    held = getattr(_held, "tenants", {})
    return held.get(tenant.id.hex, (0, None))[0] <= 1


@contextmanager
def drained(tenant, timeout: float) -> Iterator[None]:
    """Wait until nobody holds the tenant, then keep everybody out until the end.

    The caller suspends the tenant first, so that requests stop coming. Raises
    DrainTimeout if units of work still hold it after ``timeout`` seconds."""
    if _postgresql_catalog():
        import psycopg
        from psycopg.errors import LockNotAvailable

        entry = settings.DATABASES[CATALOG]
        conn = psycopg.connect(  # its own session: the lock lives as long as it does
            dbname=entry["NAME"],
            user=entry["USER"] or None,
            password=entry["PASSWORD"] or None,
            host=entry["HOST"] or None,
            port=entry["PORT"] or None,
            autocommit=True,
            **{"connect_timeout": 10, **entry.get("OPTIONS", {})},
        )
        keys = _lock_keys(tenant)
        try:
            conn.execute(f"SET lock_timeout = {int(timeout * 1000)}")
            try:
                conn.execute("SELECT pg_advisory_lock(%s, %s)", keys)
            except LockNotAvailable:
                raise DrainTimeout(
                    f"tenant {tenant.slug} was still busy after {timeout:.0f} s"
                ) from None
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s, %s)", keys)
        finally:
            conn.close()
        return
    fd = os.open(_lock_file(tenant), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise DrainTimeout(
                        f"tenant {tenant.slug} was still busy after {timeout:.0f} s"
                    ) from None
                time.sleep(0.02)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
