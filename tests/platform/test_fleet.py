"""Scale (issue 13): fleet jobs that stay fast with many tenants."""

from __future__ import annotations

from django.db import connections
from django.test.utils import CaptureQueriesContext

from oxygis.accounts import roles
from oxygis.platform.provisioning import migrate_tenant
from oxygis.tenancy.databases import tenant_context
from tests.tenancy.test_cli import oxygis


def test_an_up_to_date_tenant_costs_one_query_to_migrate(tenant_factory, monkeypatch):
    """Scale: `tenant migrate` on a tenant with nothing to apply reads its applied
    migrations once and stops: no migrate command, no post-migrate handler."""
    tenant = tenant_factory().tenant
    applied = []
    monkeypatch.setattr(roles, "apply_roles", lambda using: applied.append(using))
    from oxygis.tenancy import tenants

    def no_migrate(*args, **kwargs):
        raise AssertionError("the migrate command ran")

    monkeypatch.setattr(tenants, "call_command", no_migrate)
    # An outer unit of work: the connection watched is the one migrate_tenant uses.
    with tenant_context(tenant) as alias, CaptureQueriesContext(connections[alias]) as queries:
        assert migrate_tenant(tenant) is False
    assert 1 <= len(queries.captured_queries) <= 2, queries.captured_queries
    assert applied == []


def test_built_in_roles_are_applied_once_per_migrate(tenant_factory, monkeypatch):
    """Scale: a migrate that does apply migrations re-applies the built-in roles once,
    not once per app."""
    from django.core.management import call_command
    from django.db.migrations.loader import MigrationLoader

    tenant = tenant_factory().tenant
    with tenant_context(tenant) as alias:
        # As if the last migration of accounts had not run yet: unapplied, for real.
        graph = MigrationLoader(connections[alias]).graph
        (leaf,) = graph.leaf_nodes("accounts")
        (parent,) = [p for p in graph.node_map[leaf].parents if p.key[0] == "accounts"]
        call_command("migrate", "accounts", parent.key[1], database=alias, verbosity=0)
    applied = []
    original = roles.apply_roles
    monkeypatch.setattr(
        roles, "apply_roles", lambda using: (applied.append(using), original(using))
    )
    assert migrate_tenant(tenant) is True
    assert len(applied) == 1


def test_migrate_all_in_parallel_with_progress(tenant_factory):
    """Scale: `tenant migrate --all --jobs 2` migrates in parallel processes, says how
    each tenant went and how many there were."""
    tenant_factory()
    tenant_factory()
    result = oxygis("tenant", "migrate", "--all", "--jobs", "2")
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout and "already up to date" in result.stdout
