"""C9 and scale (issue 13): connections reused within a budget per process, and never for
another tenant; what a process keeps per tenant stays bounded."""

from __future__ import annotations

import random
import threading

import pytest
from django.db import connections

from oxygis.access.actors import system
from oxygis.sales.models import Contact
from oxygis.tenancy import databases
from oxygis.tenancy.databases import tenant_context
from oxygis.tenancy.engines import engine_for
from oxygis.tenancy.pool import ConnectionBudget, budget


@pytest.fixture
def three_tenants(tenant_factory):
    """Three tenants, each with one contact named after itself."""
    made = []
    for _ in range(3):
        tenant = tenant_factory().tenant
        with tenant_context(tenant), system(reason="test: a marker contact"):
            Contact.objects.create(name=f"marker of {tenant.slug}")
        made.append(tenant)
    return made


@pytest.mark.postgresql
def test_a_pooled_connection_never_serves_another_tenant(three_tenants, monkeypatch):
    """C9: eight threads interleave units of work on three tenants through a budget of
    two connections (so connections are reused, evicted and reopened all the time):
    every unit sees its own tenant's database and rows, and never more than the budget
    is open."""
    small = ConnectionBudget("tenants", cap=2, idle_seconds=60, wait_seconds=30)
    monkeypatch.setattr(databases, "budget", lambda name: small)
    from oxygis.tenancy.postgresql import base as pooled

    monkeypatch.setattr(pooled, "budget", lambda name: small)
    wrong, errors, peak = [], [], [0]

    def work(seed):
        rng = random.Random(seed)
        try:
            for _ in range(40):
                tenant = rng.choice(three_tenants)
                with tenant_context(tenant) as alias, system(reason="test: read"):
                    names = list(Contact.objects.values_list("name", flat=True))
                    dbname = connections[alias].connection.info.dbname
                    peak[0] = max(peak[0], small.open_connections)
                if dbname != tenant.db_name or names != [f"marker of {tenant.slug}"]:
                    wrong.append((tenant.slug, dbname, names))
        except Exception as exc:  # reported below
            errors.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and wrong == []
    assert peak[0] <= 2


@pytest.mark.postgresql
def test_connections_are_reused_and_a_dead_one_is_replaced(three_tenants):
    """Scale: a second unit of work on a tenant reuses the session of the first; a
    session the server ended (as a swap does) is noticed and replaced, unseen."""
    tenant = three_tenants[0]
    with tenant_context(tenant) as alias, system(reason="test: read"):
        Contact.objects.count()
        first = connections[alias].connection.info.backend_pid
    with tenant_context(tenant) as alias, system(reason="test: read"):
        Contact.objects.count()
        assert connections[alias].connection.info.backend_pid == first
    with engine_for(tenant.database_server).admin() as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [first])
    with tenant_context(tenant) as alias, system(reason="test: read"):
        assert Contact.objects.count() == 1
        assert connections[alias].connection.info.backend_pid != first


@pytest.mark.postgresql
def test_a_connection_given_back_holds_no_guard(three_tenants):
    """C1: a unit of work holds its tenant's guard (a session lock) while it runs; once
    it ends, its session, kept open in the pool, holds none, so that a swap's drain
    never waits for idle connections."""

    def advisory_locks(pid):
        with engine_for(tenant.database_server).admin() as admin:
            query = "SELECT count(*) FROM pg_locks WHERE pid = %s AND locktype = 'advisory'"
            return admin.execute(query, [pid]).fetchone()[0]

    tenant = three_tenants[0]
    with tenant_context(tenant) as alias, system(reason="test: read"):
        Contact.objects.count()
        session = connections[alias].connection
        pid = session.info.backend_pid
        assert advisory_locks(pid) == 1
    assert not session.closed and advisory_locks(pid) == 0


def test_what_a_process_keeps_per_tenant_stays_bounded(three_tenants, monkeypatch):
    """Scale: after units of work on many tenants, a thread keeps no tenant connection
    wrapper, Django's alias table holds only the tenants in use (it walks the table
    twice per request), and the process keeps the settings of at most MAX_REGISTERED."""
    monkeypatch.setattr(databases, "MAX_REGISTERED", 2)
    for tenant in three_tenants * 2:
        with tenant_context(tenant) as alias, system(reason="test: read"):
            Contact.objects.count()
            assert alias in connections.settings
    local = [a for a in vars(connections._connections) if a.startswith("tenant_")]
    assert local == []
    assert [a for a in connections.settings if a.startswith("tenant_")] == []
    assert len(databases._entries) <= 2


@pytest.mark.postgresql
def test_a_suspended_tenant_gives_its_connections_back(three_tenants):
    """Scale: once a request finds its tenant suspended, the process closes the idle
    connections it kept to that tenant's database."""
    from oxygis.platform.provisioning import resume_tenant, suspend_tenant
    from oxygis.tenancy.pool import pool_key
    from tests.fixtures import HttpsClient

    tenant = three_tenants[1]
    with tenant_context(tenant), system(reason="test: read"):
        Contact.objects.count()
    key = pool_key(databases._entries[tenant.alias])
    assert key in budget("tenants")._idle
    suspend_tenant(tenant)
    try:
        assert HttpsClient(f"{tenant.slug}.localhost").get("/").status_code == 503
        assert key not in budget("tenants")._idle
    finally:
        resume_tenant(tenant)


@pytest.mark.postgresql
def test_a_budget_too_large_for_the_server_is_refused():
    """Scale: `oxygis serve` refuses to start when its processes could open more
    connections than the PostgreSQL server accepts (one clear line, exit 2)."""
    from tests.tenancy.test_cli import assert_one_line_error, oxygis

    result = oxygis("serve", "--no-demo", "--no-worker", env={"OXYGIS_TENANT_CONNECTIONS": "1000"})
    assert_one_line_error(result, "accepts", "OXYGIS_TENANT_CONNECTIONS")


def test_registering_a_tenant_never_breaks_another_threads_iteration(three_tenants):
    """Scale: Django walks every registered alias at the end of each request while other
    threads register tenants (found by bench/scale.py: "dictionary keys changed during
    iteration", the connection dropped). A registration publishes a new table; a walk
    already under way finishes on the one it began with."""
    walking = iter(connections.settings)
    next(walking)
    with tenant_context(three_tenants[0]) as alias, system(reason="test: read"):
        Contact.objects.count()
        assert alias in connections.settings
    list(walking)  # raised RuntimeError when the table was changed in place
    assert alias not in connections.settings


@pytest.mark.postgresql
def test_a_new_tenant_session_starts_in_djangos_time_zone(three_tenants):
    """Scale: a tenant's new session already has Django's time zone (a role setting), so
    opening one costs no SET TIME ZONE and commit, direct or through a pooler."""
    import psycopg
    from django.conf import settings

    from oxygis.tenancy.sealing import unseal

    tenant = three_tenants[0]
    entry = engine_for(tenant.database_server).tenant_entry(tenant)
    with psycopg.connect(
        host=entry["HOST"],
        port=entry["PORT"] or 5432,
        dbname=entry["NAME"],
        user=entry["USER"],
        password=unseal(tenant.db_password_sealed),
    ) as conn:
        assert conn.info.parameter_status("TimeZone") == settings.TIME_ZONE


@pytest.mark.postgresql
def test_a_process_handing_over_keeps_no_connection(three_tenants):
    """Scale: `oxygis serve` closes its pooled connections before its server processes
    start (they open their own): otherwise the parent holds sessions of the budget
    for nothing, found by bench/scale.py as one session over the budget."""
    from oxygis.tenancy.pool import close_idle_connections

    with tenant_context(three_tenants[0]), system(reason="test: read"):
        Contact.objects.count()
    connections.close_all()
    assert budget("tenants").open_connections >= 1
    assert close_idle_connections() >= 1
    assert budget("tenants").open_connections == 0
