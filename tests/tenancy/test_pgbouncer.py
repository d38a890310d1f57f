"""C9 and scale (issue 13): tenant requests through PgBouncer, as docs/operations.md sets
it up for many hosts: session pooling, one pool per tenant database and role, the
per-tenant roles' verifiers read with ``auth_query``. A real PgBouncer, on its own port
and on a Unix socket (the layout with PgBouncer beside each web host)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.db import connections

from oxygis.access.actors import system
from oxygis.sales.models import Contact
from oxygis.tenancy import databases
from oxygis.tenancy.databases import default_server, tenant_context
from oxygis.tenancy.engines import engine_for
from oxygis.tenancy.sealing import unseal
from tests.fixtures import HttpsClient

pytestmark = pytest.mark.postgresql

# What docs/operations.md prescribes, with the test's own ports and files.
CONFIG = """\
[databases]
* = host={pg_host} port={pg_port} auth_user={admin}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir = {folder}
unix_socket_mode = 0700
auth_type = hba
auth_hba_file = {folder}/hba.conf
auth_file = {folder}/userlist.txt
auth_user = {admin}
auth_query = SELECT usename, passwd FROM pg_shadow WHERE usename = $1
admin_users = {admin}
pool_mode = session
server_reset_query = DISCARD ALL
max_client_conn = 500
default_pool_size = 20
logfile = {folder}/pgbouncer.log
pidfile = {folder}/pgbouncer.pid
"""
# Tenant roles prove their password (SCRAM, checked against the server's verifier); the
# administrator of this throwaway test server is trusted from the loopback only.
HBA = """\
host pgbouncer {admin} 127.0.0.1/32 trust
host all {admin} 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
local all all scram-sha-256
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def pgbouncer_listening():
    """A PgBouncer in front of the test server; yields its addresses: {"tcp": (host,
    port), "socket": (folder, port)}."""
    binary = shutil.which("pgbouncer")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("pgbouncer is missing (scripts/ensure-pgbouncer installs it)")
        pytest.skip("pgbouncer is not installed (scripts/ensure-pgbouncer)")
    catalog = settings.DATABASES["default"]
    folder = Path(tempfile.mkdtemp(prefix="oxy-pgbouncer-"))
    port = _free_port()
    values = {
        "pg_host": catalog["HOST"] or "127.0.0.1",
        "pg_port": catalog["PORT"] or 5432,
        "admin": catalog["USER"],
        "port": port,
        "folder": folder,
    }
    (folder / "pgbouncer.ini").write_text(CONFIG.format(**values))
    (folder / "hba.conf").write_text(HBA.format(**values))
    (folder / "userlist.txt").write_text(f'"{catalog["USER"]}" ""\n')
    command = [binary, str(folder / "pgbouncer.ini")]
    if os.getuid() == 0:  # PgBouncer refuses to run as root
        for path in [folder, *folder.iterdir()]:
            shutil.chown(path, "postgres")
        command[1:1] = ["-u", "postgres"]
    # Its log goes to its logfile (a pipe nobody reads would block it once full).
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                logfile = folder / "pgbouncer.log"
                log = logfile.read_text() if logfile.exists() else ""
                pytest.fail(f"pgbouncer did not start: {log[-2000:]}")
            time.sleep(0.1)
    yield {"tcp": ("127.0.0.1", port), "socket": (str(folder), port)}
    process.terminate()
    process.wait(timeout=10)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pgbouncer(pgbouncer_listening):
    """The PgBouncer's TCP address (host, port)."""
    return pgbouncer_listening["tcp"]


@pytest.fixture(params=["tcp", "socket"])
def through_pgbouncer(pgbouncer_listening, monkeypatch, request):
    """The primary server's tenants served through the PgBouncer (OXYGIS_DATABASE_POOLER),
    over TCP or its Unix socket, and back to direct connections afterwards."""
    pgbouncer = pgbouncer_listening[request.param]
    monkeypatch.setattr(settings, "DATABASE_POOLER", pgbouncer)
    default_server()
    _forget_registered()
    yield pgbouncer
    monkeypatch.setattr(settings, "DATABASE_POOLER", None)
    default_server()
    _forget_registered()


def _forget_registered():
    from oxygis.tenancy.models import Tenant

    connections.close_all()
    for tenant in Tenant.objects.select_related("database_server"):
        databases.forget_tenant_database(tenant)


def _console(pgbouncer):
    host, port = pgbouncer
    user = settings.DATABASES["default"]["USER"]
    return psycopg.connect(host=host, port=port, user=user, dbname="pgbouncer", autocommit=True)


def _pools(pgbouncer) -> dict[tuple[str, str], int]:
    """(database, user) -> client connections PgBouncer holds for it."""
    with _console(pgbouncer) as console:
        cursor = console.execute("SHOW POOLS")
        columns = [c.name for c in cursor.description]
        rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    return {(r["database"], r["user"]): r["cl_active"] + r["cl_waiting"] for r in rows}


def _tenant_login(tenant, pgbouncer, *, dbname=None, password=None, **options):
    host, port = pgbouncer
    return psycopg.connect(
        host=host,
        port=port,
        dbname=dbname or tenant.db_name,
        user=tenant.db_name,
        password=password or unseal(tenant.db_password_sealed),
        connect_timeout=5,
        **options,
    )


def test_requests_reach_each_tenant_through_the_pooler(
    through_pgbouncer, pgbouncer, tenant_factory
):
    """C9: with a pooler configured, a tenant's requests are served through it (PgBouncer
    holds the process's pooled session), interleaved over two tenants, each seeing only
    its own rows; administration stays direct."""
    one, two = (tenant_factory().tenant for _ in range(2))
    for tenant in (one, two):
        with tenant_context(tenant), system(reason="test: a marker contact"):
            Contact.objects.create(name=f"marker of {tenant.slug}")
    for tenant in (one, two, one, two, two, one):
        tenant.refresh_from_db()
        with tenant_context(tenant) as alias, system(reason="test: read"):
            names = list(Contact.objects.values_list("name", flat=True))
            info = connections[alias].connection.info
            assert (info.host, info.port) == (through_pgbouncer[0], through_pgbouncer[1])
        assert names == [f"marker of {tenant.slug}"]
    pools = _pools(pgbouncer)
    assert pools.get((one.db_name, one.db_name), 0) >= 1  # our idle pooled session
    assert pools.get((two.db_name, two.db_name), 0) >= 1
    # A request, end to end, through the pooler.
    response = HttpsClient(f"{one.slug}.localhost").get("/accounts/login/")
    assert response.status_code == 200


def test_the_pooler_refuses_a_wrong_password_and_another_tenants_database(
    pgbouncer_listening, tenant_factory
):
    """C9: the pooler does not weaken the server's barriers, over TCP or its Unix socket:
    a tenant role with a wrong password is refused, and with its own password cannot
    open another tenant's database."""
    one, two = (tenant_factory().tenant for _ in range(2))
    for address in pgbouncer_listening.values():
        with _tenant_login(one, address) as conn:
            assert conn.execute("SELECT current_database()").fetchone()[0] == one.db_name
        with pytest.raises(psycopg.OperationalError):
            _tenant_login(one, address, password="not-the-password")
        with pytest.raises(psycopg.OperationalError):
            _tenant_login(one, address, dbname=two.db_name)


def test_suspending_a_tenant_ends_its_sessions_behind_the_pooler(through_pgbouncer, tenant_factory):
    """C9: a suspension ends the tenant's serving sessions everywhere: the process's idle
    pooled one and the pooler's server connections (another host's idle session too)."""
    from oxygis.platform.provisioning import resume_tenant, suspend_tenant

    tenant = tenant_factory().tenant
    with tenant_context(tenant), system(reason="test: read"):
        Contact.objects.count()
    # Another host's worker, holding an idle serving session through the pooler.
    other_host = _tenant_login(tenant, through_pgbouncer, autocommit=True)
    with engine_for(tenant.database_server).admin() as admin:

        def serving():
            return admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                [tenant.db_name],
            ).fetchone()[0]

        assert serving() >= 2  # ours and the other host's
        suspend_tenant(tenant)
        try:
            deadline = time.monotonic() + 5
            while serving() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert serving() == 0
            assert HttpsClient(f"{tenant.slug}.localhost").get("/").status_code == 503
        finally:
            resume_tenant(tenant)
            other_host.close()
    # Resumed, it is served again (a new session through the pooler).
    with tenant_context(tenant), system(reason="test: read"):
        assert Contact.objects.count() == 0


def test_a_swap_drains_units_of_work_held_through_the_pooler(through_pgbouncer, tenant_factory):
    """C1, C9: the guard works through the pooler (session pooling keeps the advisory
    lock with its session): a drain waits for a unit of work in flight, and one arriving
    during the drain is refused with TenantBusy."""
    import threading

    from oxygis.tenancy.guard import TenantBusy, drained

    tenant = tenant_factory().tenant
    entered, leave, order = threading.Event(), threading.Event(), []

    def unit_of_work():
        with tenant_context(tenant), system(reason="test: a write in flight"):
            Contact.objects.create(name="in flight")
            entered.set()
            leave.wait(10)
            order.append("unit ended")
        connections.close_all()

    worker = threading.Thread(target=unit_of_work)
    worker.start()
    assert entered.wait(10)
    threading.Timer(0.5, leave.set).start()
    with drained(tenant, timeout=10):
        order.append("drained")
        with (
            pytest.raises(TenantBusy),
            tenant_context(tenant),
            system(reason="test: arrives during the drain"),
        ):
            Contact.objects.count()
    worker.join()
    assert order == ["unit ended", "drained"]
    with tenant_context(tenant), system(reason="test: read"):
        assert Contact.objects.filter(name="in flight").count() == 1
