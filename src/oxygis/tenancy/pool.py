"""PostgreSQL connections reused within a budget, per process (issue 13).

Opening a PostgreSQL session costs more than most requests do; keeping one per tenant per
thread would need thousands against a server's ``max_connections``. So each process
keeps two budgets of open connections, shared by its threads:

* ``catalog``: OXYGIS_CATALOG_CONNECTIONS connections to the catalog;
* ``tenants``: OXYGIS_TENANT_CONNECTIONS connections in all, whatever the tenant.

A unit of work takes a connection when it first touches its database and gives it back
when it ends (Django's ``close()``). A connection given back goes to the idle list of
its database and is the next one handed out there; one idle for OXYGIS_DB_IDLE_SECONDS is
closed; when the budget is spent, the connection idle longest (of any database) is
closed to make room, and if none is idle the taker waits, then gets PoolExhausted (a
503). A connection is only ever handed out again for the database it was opened to (its
key): one tenant's session never serves another's request.

Health: a connection handed out again is checked without a round trip (a session the
server ended, by a restart or ``pg_terminate_backend`` in a swap, has its socket
readable while idle) and replaced if dead; one given back inside a transaction is
rolled back, and every session lock it held released.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
from collections import OrderedDict

from django.conf import settings

log = logging.getLogger("oxygis.pool")


class PoolExhausted(RuntimeError):
    """Every connection of the budget is in use and none came back in time."""


def _alive(conn) -> bool:
    if conn.closed or conn.broken:
        return False
    try:
        readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
    except (OSError, ValueError):
        return False
    # An idle session has nothing to say: something to read means the server ended it
    # (a FATAL message, or the end of the stream).
    return not readable


class ConnectionBudget:
    def __init__(self, name: str, cap: int, idle_seconds: float, wait_seconds: float = 10):
        self.name, self.cap = name, cap
        self.idle_seconds, self.wait_seconds = idle_seconds, wait_seconds
        self._lock = threading.Condition()
        self._idle: OrderedDict[str, list] = OrderedDict()  # key -> [(conn, given_back_at)]
        self._open = 0  # in use and idle

    @property
    def open_connections(self) -> int:
        return self._open

    def _close(self, conn, *, until_gone: bool = False) -> None:
        """Close ``conn``; with ``until_gone``, also wait (briefly) until the server has
        ended the session: one closed to make room is gone before its replacement
        opens, so that the server never sees more sessions than the budget. (Not
        needed through a pooler: its sessions to the server outlive ours.)"""
        watch = None
        if until_gone:
            with contextlib.suppress(Exception):
                watch = os.dup(conn.pgconn.socket)
        try:
            conn.close()
        except Exception as exc:  # already broken: it is gone either way
            log.debug("closing a pooled connection: %s", exc)
        if watch is not None:
            try:
                # The server closes its end once the session has ended (after leaving
                # pg_stat_activity).
                select.select([watch], [], [], 0.1)
            finally:
                os.close(watch)

    def _oldest_idle(self):
        """(key, entry) of the connection idle longest, or None."""
        oldest = None
        for key, entries in self._idle.items():
            for entry in entries:
                if oldest is None or entry[1] < oldest[1][1]:
                    oldest = (key, entry)
        return oldest

    def acquire(self, key: str, connect):
        """A connection to ``key``: an idle one of that key, else a new one (within the
        budget, making room by closing the longest idle connection of another key)."""
        deadline = time.monotonic() + self.wait_seconds
        while True:
            dead, fresh = [], None
            with self._lock:
                entries = self._idle.get(key)
                while entries:
                    conn, _ = entries.pop()  # the most recently given back: warm
                    if not entries:
                        del self._idle[key]
                    if _alive(conn):
                        fresh = conn
                        break
                    dead.append(conn)
                    self._open -= 1
                if fresh is None:
                    if self._open >= self.cap:
                        oldest = self._oldest_idle()
                        if oldest is not None:
                            other, entry = oldest
                            self._idle[other].remove(entry)
                            if not self._idle[other]:
                                del self._idle[other]
                            dead.append(entry[0])
                            self._open -= 1
                    if self._open < self.cap:
                        self._open += 1
                        fresh = "new"
                    else:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            raise PoolExhausted(
                                f"all {self.cap} {self.name} connections of this process are busy"
                            )
                        self._lock.wait(remaining)
            for conn in dead:
                # Through a pooler the server keeps its session (PgBouncer's): nothing
                # to wait for.
                wait = fresh == "new" and not getattr(conn, "behind_pooler", False)
                self._close(conn, until_gone=wait)
            if fresh == "new":
                try:
                    return connect()
                except BaseException:
                    with self._lock:
                        self._open -= 1
                        self._lock.notify()
                    raise
            if fresh is not None:
                return fresh

    def release(self, key: str, conn) -> None:
        """Give ``conn`` back: idle for ``key``, or closed if it cannot be reused."""
        reusable = _alive(conn)
        if reusable:
            try:
                if conn.info.transaction_status != 0:  # not idle: roll back what is open
                    conn.rollback()
                conn.autocommit = True
                if getattr(conn, "holds_session_locks", False):
                    # No lock outlives its user. Only the tenant guard takes session
                    # locks on pooled connections (raw SQL is confined to reviewed
                    # files, tests/security/test_guard.py): a connection that never
                    # took one is spared the round trip.
                    conn.execute("SELECT pg_advisory_unlock_all()")
                    conn.holds_session_locks = False
            except Exception:
                reusable = False
        with self._lock:
            if reusable:
                self._idle.setdefault(key, []).append((conn, time.monotonic()))
                self._idle.move_to_end(key)
            else:
                self._open -= 1
            self._lock.notify()
        if not reusable:
            self._close(conn)

    def discard(self, conn) -> None:
        """A connection that will not come back (its user closes it)."""
        with self._lock:
            self._open -= 1
            self._lock.notify()
        self._close(conn)

    def close_key(self, key: str) -> int:
        """Close the idle connections of ``key`` (a tenant suspended, dropped, swapped)."""
        with self._lock:
            entries = self._idle.pop(key, [])
            self._open -= len(entries)
            self._lock.notify_all()
        for conn, _ in entries:
            self._close(conn)
        return len(entries)

    def sweep(self, *, everything: bool = False) -> int:
        """Close the connections idle for longer than ``idle_seconds`` (or all idle)."""
        limit = float("inf") if everything else time.monotonic() - self.idle_seconds
        old = []
        with self._lock:
            for key in list(self._idle):
                keep = [e for e in self._idle[key] if e[1] >= limit]
                old += [e[0] for e in self._idle[key] if e[1] < limit]
                if keep:
                    self._idle[key] = keep
                else:
                    del self._idle[key]
            self._open -= len(old)
            self._lock.notify_all()
        for conn in old:
            self._close(conn)
        return len(old)


def pool_key(entry: dict) -> str:
    """Which connections are interchangeable: those to one database on one server."""
    return f"{entry['NAME']}@{entry.get('HOST', '')}:{entry.get('PORT', '')}"


_budgets: dict[str, ConnectionBudget] = {}
_budgets_lock = threading.Lock()
_last_sweep = [0.0]


def budget(name: str) -> ConnectionBudget:
    """The process's budget ``name`` ("catalog" or "tenants")."""
    with _budgets_lock:
        found = _budgets.get(name)
        if found is None:
            cap = settings.CATALOG_CONNECTIONS if name == "catalog" else settings.TENANT_CONNECTIONS
            found = _budgets[name] = ConnectionBudget(name, cap, settings.DB_IDLE_SECONDS)
        now = time.monotonic()
        sweep = now - _last_sweep[0] > 5
        if sweep:
            _last_sweep[0] = now
    if sweep:
        for each in list(_budgets.values()):
            each.sweep()
    return found


def close_idle_connections() -> int:
    """Close every idle connection of this process (one that hands over to others, as
    `oxygis serve` to its server processes, keeps none open meanwhile)."""
    with _budgets_lock:
        every = list(_budgets.values())
    return sum(each.sweep(everything=True) for each in every)


def check_budget(processes: int) -> None:
    """Refuse to start when the connections these processes may open (plus the backup
    worker's and a few for commands) exceed what a PostgreSQL server accepts."""
    from .context import CATALOG, using_database
    from .dburl import is_postgresql
    from .engines import engine_for
    from .models import DatabaseServer

    per_process = settings.CATALOG_CONNECTIONS + settings.TENANT_CONNECTIONS
    needed = (processes + 1) * per_process + 5
    with using_database(CATALOG):
        servers = list(DatabaseServer.objects.filter(engine=DatabaseServer.POSTGRESQL))
    if not servers and not is_postgresql(settings.DATABASES[CATALOG]):
        return
    for server in servers:
        with engine_for(server).admin() as conn:
            limit = int(conn.execute("SHOW max_connections").fetchone()[0])
            reserved = int(conn.execute("SHOW superuser_reserved_connections").fetchone()[0])
        if needed > limit - reserved:
            raise BudgetTooLarge(
                f"{processes} web process(es) and a worker may open {needed} connections to "
                f"database server {server.name}, which accepts {limit - reserved}: lower "
                "OXYGIS_TENANT_CONNECTIONS or OXYGIS_CATALOG_CONNECTIONS, raise its "
                "max_connections, or put PgBouncer in front (docs/operations.md)"
            )


class BudgetTooLarge(RuntimeError):
    pass
