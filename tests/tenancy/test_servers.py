"""Scale (issues 13, 19): database servers are registered by the operator, new tenants go
to the open server holding the fewest, and a closed server takes none."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

from oxygis.config import parse_pooler_address
from oxygis.tenancy.models import DatabaseServer
from tests.conftest import PG_ADMIN_URL, PREFIX, _pg_admin
from tests.tenancy.test_cli import assert_one_line_error, oxygis

BASE = PG_ADMIN_URL.rsplit("/", 1)[0]


@pytest.fixture
def second_server(tenant_factory):
    """The test server registered a second time, as "db2" (a second machine to Oxygis)."""
    call_command("server", "add", "db2", "--url", f"{BASE}/postgres", "--region", "zone-b")
    yield DatabaseServer.objects.get(name="db2")
    for tenant in DatabaseServer.objects.get(name="db2").tenants.all():
        from oxygis.platform.provisioning import drop_tenant

        drop_tenant(tenant)
    DatabaseServer.objects.filter(name="db2").delete()


@pytest.mark.postgresql
def test_new_tenants_go_to_the_open_server_holding_the_fewest(second_server, tenant_factory):
    """Scale: with a second server registered, the next tenant lands on it (it holds
    none); closed, it takes no more and the next lands on the first again."""
    first = tenant_factory().tenant
    assert first.database_server == second_server
    assert second_server.region == "zone-b"
    call_command("server", "close", "db2")
    assert tenant_factory().tenant.database_server.name == "primary"
    call_command("server", "open", "db2")


@pytest.mark.postgresql
def test_a_server_is_refused_without_the_rights_or_with_a_password_in_the_url():
    """Scale, S10: a login that cannot create roles and databases is refused before
    anything is kept, and a password on the command line is refused (it would show in
    the process list); each in one line, exit 2."""
    weak = f"{PREFIX}weak"
    with _pg_admin() as admin:
        admin.execute(f'CREATE ROLE "{weak}" LOGIN')
    try:
        with pytest.raises(CommandError, match="needs CREATEROLE and CREATEDB"):
            call_command(
                "server", "add", "db3", "--url", f"{BASE.replace('postgres@', f'{weak}@')}/postgres"
            )
        assert not DatabaseServer.objects.filter(name="db3").exists()
    finally:
        with _pg_admin() as admin:
            admin.execute(f'DROP ROLE "{weak}"')
    url = BASE.replace("postgres@", "postgres:hunter2@") + "/postgres"
    result = oxygis("server", "add", "db3", "--url", url)
    assert_one_line_error(result, "no password on the command line")
    assert "hunter2" not in result.stderr


@pytest.mark.postgresql
def test_the_server_list_shows_members_tenants_and_whether_it_is_open(second_server):
    """Scale: `oxygis server list` names each server, its members and tenant count."""
    listed = oxygis("server", "list")
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith("db2 "))
    assert "127.0.0.1:5432" in row and "zone-b" in row and " yes " in f"{row} "


def test_a_pooler_is_a_host_and_port_or_an_absolute_socket_folder():
    """A pooler beside the web host is reached through its Unix socket (libpq: a host
    that is an absolute path is the socket's folder); anything else is refused in one
    line before the first request, never at it."""
    assert parse_pooler_address("10.0.0.5:6432", "X") == ("10.0.0.5", 6432)
    assert parse_pooler_address("[::1]:6432", "X") == ("::1", 6432)
    assert parse_pooler_address("/run/pgbouncer:6432", "X") == ("/run/pgbouncer", 6432)
    for bad in ("run/pgbouncer:6432", "/run/pgbouncer", "/run/pg bouncer:6432", "pg:0"):
        with pytest.raises(ImproperlyConfigured) as refused:
            parse_pooler_address(bad, "OXYGIS_DATABASE_POOLER")
        assert str(refused.value).startswith("OXYGIS_DATABASE_POOLER")
