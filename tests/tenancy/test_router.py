"""C9: fail-closed routing. No bound database means no data, never another database."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.db import router

from oxygis.tenancy.context import CATALOG, NoDatabaseContext, using_database
from oxygis.tenancy.databases import tenant_context
from oxygis.tenancy.models import Plan, Tenant
from oxygis.tenancy.router import HomeRouter, database_for, home_of


def test_local_models_refuse_to_run_with_no_context():
    """C9: a user or session lookup with nothing bound raises instead of guessing."""
    with pytest.raises(NoDatabaseContext):
        get_user_model().objects.count()
    with pytest.raises(NoDatabaseContext):
        Session.objects.exists()


def test_tenant_data_is_never_routed_to_the_catalog():
    """C9: business apps (anything not catalog/local) cannot be read from the catalog."""
    assert home_of("sales") == "tenant"
    with pytest.raises(NoDatabaseContext):
        database_for("sales")
    with using_database(CATALOG), pytest.raises(NoDatabaseContext):
        database_for("sales")


def test_catalog_models_always_use_the_catalog(alpha):
    """C9: control-plane rows stay in the catalog even inside a tenant's context."""
    with tenant_context(alpha.tenant):
        assert router.db_for_read(Tenant) == CATALOG
        assert Plan.objects.filter(code="paid").exists()


def test_local_models_follow_the_bound_tenant(alpha, bravo):
    """C9: the same query reads the bound tenant's database and no other."""
    with tenant_context(alpha.tenant):
        assert get_user_model().objects.filter(username="member").exists()
        alpha_emails = set(get_user_model().objects.values_list("email", flat=True))
    with tenant_context(bravo.tenant):
        bravo_emails = set(get_user_model().objects.values_list("email", flat=True))
    assert alpha_emails and bravo_emails and not alpha_emails & bravo_emails


def test_migrations_land_only_in_their_home():
    """C9: catalog tables only in the catalog, business tables never there."""
    r = HomeRouter()
    assert r.allow_migrate(CATALOG, "tenancy")
    assert not r.allow_migrate("tenant_x", "tenancy")
    assert not r.allow_migrate(CATALOG, "sales")
    assert r.allow_migrate("tenant_x", "sales")
    assert r.allow_migrate(CATALOG, "auth") and r.allow_migrate("tenant_x", "auth")


def test_no_relation_across_databases(alpha):
    """C9: a row of one database cannot be attached to a row of another."""
    with tenant_context(alpha.tenant):
        user = get_user_model().objects.get(username="member")
    plan = Plan.objects.get(code="paid")
    assert not HomeRouter().allow_relation(user, plan)
