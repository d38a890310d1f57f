"""C9 on PostgreSQL: one login role per tenant, owning its database; no way across."""

import psycopg
import pytest
from django.conf import settings
from psycopg import sql

from oxygis.tenancy.engines import engine_for
from oxygis.tenancy.sealing import unseal

pytestmark = pytest.mark.postgresql


def _connect_as(owner, target_db: str):
    server = owner.database_server
    return psycopg.connect(
        dbname=target_db,
        user=owner.db_name,
        password=unseal(owner.db_password_sealed),
        host=server.host,
        port=server.port or 5432,
        connect_timeout=5,
    )


def test_tenant_role_opens_its_own_database_only(alpha, bravo):
    """C9: alpha's credentials open alpha's database, not bravo's, not the catalog."""
    with _connect_as(alpha.tenant, alpha.tenant.db_name) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == alpha.tenant.db_name
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        _connect_as(alpha.tenant, bravo.tenant.db_name)
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        _connect_as(alpha.tenant, settings.DATABASES["default"]["NAME"])  # nor the catalog


def test_public_has_no_connect_and_the_role_owns_everything(alpha):
    """C9: CONNECT revoked from PUBLIC; the tenant role owns its database and tables."""
    with engine_for(alpha.tenant.database_server).admin() as conn:
        public_connect = conn.execute(
            "SELECT has_database_privilege('public', %s, 'CONNECT')", [alpha.tenant.db_name]
        ).fetchone()[0]
        owner = conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
            [alpha.tenant.db_name],
        ).fetchone()[0]
        role = conn.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = %s",
            [alpha.tenant.db_name],
        ).fetchone()
    assert public_connect is False
    assert owner == alpha.tenant.db_name
    assert role == (False, False, False)
    with _connect_as(alpha.tenant, alpha.tenant.db_name) as conn:
        # Every table but the audit trail, which the role may only read and add to (C17).
        foreign = conn.execute(
            "SELECT array_agg(tablename::text) FROM pg_tables"
            " WHERE schemaname = 'public' AND tableowner <> current_user"
        ).fetchone()[0]
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone()[0]
    assert tables > 5 and foreign == ["audit_auditevent"]


def test_role_secret_is_sealed_in_the_catalog(alpha):
    """C9: the catalog holds the role password only sealed; the server only its verifier."""
    sealed = alpha.tenant.db_password_sealed
    password = unseal(sealed)
    assert len(password) >= 32 and password not in sealed
    with engine_for(alpha.tenant.database_server).admin() as conn:
        stored = conn.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = %s", [alpha.tenant.db_name]
        ).fetchone()[0]
    assert stored.startswith("SCRAM-SHA-256$") and password not in stored


def test_drop_removes_the_role_too(tenant_factory):
    """C9: a dropped tenant leaves no login role behind."""
    from oxygis.platform.provisioning import drop_tenant

    tenant = tenant_factory().tenant
    drop_tenant(tenant)
    with engine_for(tenant.database_server).admin() as conn:
        role = conn.execute(
            sql.SQL("SELECT 1 FROM pg_roles WHERE rolname = {}").format(sql.Literal(tenant.db_name))
        ).fetchone()
    assert role is None
