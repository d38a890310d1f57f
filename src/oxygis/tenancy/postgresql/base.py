"""Django's PostgreSQL backend, taking its connections from a budget of the process
(tenancy/pool.py) instead of opening one per unit of work.

A settings entry names its budget (``OXYGIS_BUDGET``: "catalog" or "tenants"). With
``OXYGIS_GUARD``, a connection handed to a unit of work also takes the tenant's guard in
that database, shared (tenancy/guard.py): a swap of the database waits for it, and a
unit of work arriving during one gets TenantBusy.
"""

from __future__ import annotations

from django.db.backends.postgresql import base

from ..guard import hold_in_session
from ..pool import budget, pool_key


class _Lease:
    """What Django's backend calls "the pool", for one settings entry: ``getconn()`` from
    the budget, ``putconn()`` back to it (Django's ``_close`` calls it)."""

    def __init__(self, wrapper):
        self.key = pool_key(wrapper.settings_dict)
        self.budget = budget(wrapper.settings_dict["OXYGIS_BUDGET"])
        self.guarded = wrapper.settings_dict.get("OXYGIS_GUARD", False)
        self.wrapper = wrapper

    def open(self) -> None:
        pass

    def _connect(self):
        params = self.wrapper.get_connection_params()
        params["autocommit"] = True
        conn = self.wrapper.Database.connect(**params)
        conn.behind_pooler = self.wrapper.settings_dict.get("OXYGIS_POOLER", False)
        self.wrapper._configure_connection(conn)
        return conn

    def getconn(self, *, retry: bool = True):
        conn = self.budget.acquire(self.key, self._connect)
        conn._pool = self
        if not self.guarded:
            return conn
        try:
            hold_in_session(conn, self.wrapper.settings_dict["NAME"])
            conn.holds_session_locks = True  # released when given back
        except self.wrapper.Database.OperationalError:
            # Ended by the server an instant ago (a swap's pg_terminate_backend), before
            # the health check could see it: given back (closed) and replaced once,
            # unseen by the unit of work.
            self.budget.release(self.key, conn)
            if not retry:
                raise
            return self.getconn(retry=False)
        except BaseException:
            self.budget.release(self.key, conn)
            raise
        return conn

    def putconn(self, conn) -> None:
        self.budget.release(self.key, conn)

    def close(self) -> None:
        self.budget.close_key(self.key)


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self):
        lease = self.__dict__.get("_oxygis_lease")
        if lease is None:
            lease = self.__dict__["_oxygis_lease"] = _Lease(self)
        return lease

    def close_pool(self):
        self.pool.close()
