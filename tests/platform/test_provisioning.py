"""C9: provisioning from the template and dropping, on the engine under test."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password

from oxygis.platform.provisioning import (
    TenantError,
    drop_tenant,
    migrate_tenant,
    provision_tenant,
    validate_slug,
)
from oxygis.tenancy.databases import tenant_context
from oxygis.tenancy.engines import engine_for
from oxygis.tenancy.models import Tenant
from tests.fixtures import HttpsClient, unique_slug


def test_provisioned_tenant_has_its_own_database_and_a_working_admin(tenant_factory):
    """C9: a new tenant gets a database of its own, named from its id, and an admin."""
    made = tenant_factory(name="Fresh Co", plan="education")
    tenant = made.tenant
    assert tenant.state == Tenant.ACTIVE
    assert tenant.db_name.endswith(tenant.id.hex)
    assert tenant.slug not in tenant.db_name
    assert engine_for(tenant.database_server).database_exists(tenant)
    assert tenant.plan.rto_hours == 48

    validate_password(made.admin_password)  # the printed password meets the policy
    with tenant_context(tenant):
        admin = get_user_model().objects.get(username="admin")
        assert admin.is_superuser and admin.password != made.admin_password

    client = HttpsClient(f"{tenant.slug}.localhost")
    client.sign_in("admin", made.admin_password)
    assert client.get("/").status_code == 200


def test_new_tenant_starts_empty_of_other_tenants_people(alpha, tenant_factory):
    """C9: the template copy holds no data of any other tenant."""
    made = tenant_factory()
    with tenant_context(made.tenant):
        assert list(get_user_model().objects.values_list("username", flat=True)) == ["admin"]


def test_drop_removes_database_and_catalog_row(tenant_factory):
    """C9: dropping leaves neither the database nor the tenant's host behind."""
    made = tenant_factory()
    tenant = made.tenant
    engine = engine_for(tenant.database_server)
    drop_tenant(tenant)
    assert not engine.database_exists(tenant)
    assert not Tenant.objects.filter(slug=tenant.slug).exists()
    assert HttpsClient(f"{tenant.slug}.localhost").get("/").status_code == 404


@pytest.mark.parametrize(
    ("slug", "message"),
    [
        ("ab", "invalid slug"),
        ("a" * 41, "invalid slug"),
        ("Acme", "invalid slug"),
        ("acme_co", "invalid slug"),
        ("-acme", "invalid slug"),
        ("acme-", "invalid slug"),
        ("xn--acme", "'--' is not allowed"),
        ("www", "reserved"),
        ("console", "reserved"),
        ("api", "reserved"),
        ("admin", "reserved"),
        ("mail", "reserved"),
        ("static", "reserved"),
        ("../etc", "invalid slug"),
        ("acme;drop", "invalid slug"),
    ],
)
def test_bad_slugs_are_refused(slug, message):
    """C9: tenant names become host names only through a strict rule."""
    with pytest.raises(TenantError, match=message):
        validate_slug(slug)


def test_refusals_leave_nothing_behind(alpha):
    """C9: a refused creation creates no row and no database."""
    before = Tenant.objects.count()
    with pytest.raises(TenantError, match="already exists"):
        provision_tenant(alpha.tenant.slug, name="Copycat", plan="paid")
    with pytest.raises(TenantError, match="unknown plan"):
        provision_tenant(unique_slug(), name="X", plan="platinum")
    with pytest.raises(TenantError, match="display name"):
        provision_tenant(unique_slug(), name="  ", plan="paid")
    assert Tenant.objects.count() == before


def _tenant_databases() -> set[str]:
    """Every tenant database that exists on the server under test, by name."""
    from django.conf import settings

    from oxygis.tenancy.databases import default_server

    engine = engine_for(default_server())
    if hasattr(engine, "admin"):
        with engine.admin() as conn:
            rows = conn.execute(
                "SELECT datname FROM pg_database WHERE starts_with(datname, %s)",
                [f"{settings.DB_PREFIX}t_"],
            ).fetchall()
        return {name for (name,) in rows}
    return {p.stem for p in engine.folder.glob("*.sqlite3") if not p.stem.startswith("_")}


def test_failure_after_the_copy_rolls_everything_back(monkeypatch):
    """C9: if the first admin cannot be created, the new database and row are removed."""
    import oxygis.platform.provisioning as provisioning

    monkeypatch.setattr(provisioning, "generate_password", lambda length=20: "short")
    before = _tenant_databases()
    slug = unique_slug("broken")
    with pytest.raises(Exception, match="at least 10 characters"):
        provision_tenant(slug, name="Broken", plan="paid")
    assert not Tenant.objects.filter(slug=slug).exists()
    assert _tenant_databases() == before


def test_migrate_is_idempotent(alpha):
    """C9: migrating an up-to-date tenant is a harmless no-op (so --all can resume)."""
    migrate_tenant(alpha.tenant)
    migrate_tenant(alpha.tenant)
    with tenant_context(alpha.tenant):
        assert get_user_model().objects.filter(username="member").exists()
