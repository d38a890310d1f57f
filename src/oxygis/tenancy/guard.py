"""The per-tenant guard: every unit of work on a tenant's database holds it, shared; a
swap of that database (a live restore, a rollback) drains it, exclusive, first.

Threat: an acknowledged write lost in a swap. A request that passed the "suspended?"
check an instant before the swap would otherwise commit into the database (or, on
SQLite, the write-ahead log) that the swap is moving away. With the guard, the swap
waits until no request, command or job holds the tenant (across processes and hosts),
or gives up after a timeout and changes nothing.

* PostgreSQL: a session advisory lock in the tenant's own database, taken shared by
  every connection handed to a unit of work (tenancy/postgresql/base.py) and released
  when it is given back; a swap waits for ``pg_advisory_lock`` on a session of its own
  in that database, with a lock timeout, then closes the database to new sessions.
  A unit of work that never touches the database holds nothing, and needs nothing.
* SQLite (the embedded mode, one host): ``flock`` on a file per tenant, held for the
  whole unit of work (``tenant_context``).

A unit of work never waits: a drained (or draining) tenant answers TenantBusy at once,
which becomes a 503 with Retry-After.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

# Keys of our advisory lock in each tenant database ("oxyg", 1).
_LOCK_KEYS = (0x6F787967, 1)


class TenantBusy(RuntimeError):
    """The tenant's database is being swapped: try again in a moment."""


class DrainTimeout(RuntimeError):
    """Units of work still held the tenant when the drain's time was up."""


_held = threading.local()  # tenant id -> (depth, release): nested holds take it once


def _on_postgresql(tenant) -> bool:
    return tenant.database_server.engine == tenant.database_server.POSTGRESQL


def _lock_file(tenant) -> Path:
    folder = Path(settings.VAR_DIR) / "guards"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder / f"{tenant.id.hex}.lock"


def hold_in_session(conn, dbname: str) -> None:
    """Take the guard, shared, in the session ``conn`` (PostgreSQL; released when the
    connection is given back, with every session lock); raise TenantBusy if a swap
    holds it."""
    taken = conn.execute("SELECT pg_try_advisory_lock_shared(%s, %s)", _LOCK_KEYS).fetchone()[0]
    if not taken:
        raise TenantBusy(f"database {dbname} is being swapped")


def _take_shared_file(tenant):
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
    """Hold the tenant's guard, shared, for a unit of work (raises TenantBusy). On
    PostgreSQL the connections the unit of work takes hold it themselves."""
    if _on_postgresql(tenant):
        yield
        return
    held = getattr(_held, "tenants", None)
    if held is None:
        held = _held.tenants = {}
    key = tenant.id.hex
    if key in held:
        depth, release = held[key]
        held[key] = (depth + 1, release)
    else:
        held[key] = (1, _take_shared_file(tenant))
    try:
        yield
    finally:
        depth, release = held[key]
        if depth > 1:
            held[key] = (depth - 1, release)
        else:
            del held[key]
            release()


@contextmanager
def drained(tenant, timeout: float) -> Iterator[None]:
    """Wait until nobody holds the tenant, then keep everybody out until the end.

    The caller puts the tenant in maintenance first, so that requests stop coming.
    Raises DrainTimeout if units of work still hold it after ``timeout`` seconds."""
    if _on_postgresql(tenant):
        from psycopg.errors import LockNotAvailable

        from .engines import engine_for

        with engine_for(tenant.database_server).admin(tenant.db_name) as conn:
            conn.execute(f"SET lock_timeout = {int(timeout * 1000)}")
            try:
                conn.execute("SELECT pg_advisory_lock(%s, %s)", _LOCK_KEYS)
            except LockNotAvailable:
                raise DrainTimeout(
                    f"tenant {tenant.slug} was still busy after {timeout:.0f} s"
                ) from None
            try:
                yield
            finally:
                # The swap ends this session (it terminates every session of the
                # database it moves): nothing to release then.
                with contextlib.suppress(Exception):
                    conn.execute("SELECT pg_advisory_unlock(%s, %s)", _LOCK_KEYS)
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
