"""Provision a usable tenant: catalog row and database (tenancy/tenants.py), then its
first administrator. Above the domain apps, since the administrator is an accounts user
with the Administrator role."""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password

from oxygis.accounts.roles import ADMINISTRATOR
from oxygis.tenancy.databases import server_for_new_tenant, tenant_context
from oxygis.tenancy.engines import engine_for
from oxygis.tenancy.models import Plan, Tenant
from oxygis.tenancy.tenants import (  # noqa: F401 - the foundation, re-exported for callers
    EngineError,
    SlugTaken,
    TenantError,
    database_name,
    discard_tenant,
    drop_tenant,
    get_tenant,
    migrate_tenant,
    register_tenant,
    resume_tenant,
    set_replica_zones,
    suspend_tenant,
    validate_slug,
)


def generate_password(length: int = 20) -> str:
    """A random password with every character class the policy (C13) asks for."""
    classes = [string.ascii_uppercase, string.ascii_lowercase, string.digits, "!#%+-.:=?@_~"]
    alphabet = "".join(classes)
    while True:
        password = "".join(secrets.choice(alphabet) for _ in range(length))
        if all(any(c in cls for c in password) for cls in classes):
            return password


@dataclass(frozen=True)
class ProvisionedTenant:
    tenant: Tenant
    admin_username: str
    admin_password: str  # shown once to the operator, never stored


def provision_tenant(
    slug: str, *, name: str, plan: str, admin_email: str = "", server=None
) -> ProvisionedTenant:
    """Create a tenant: catalog row, database copied from the template, first admin."""
    validate_slug(slug)
    plan_row = Plan.objects.filter(code=plan).first()
    if plan_row is None:
        codes = ", ".join(Plan.objects.values_list("code", flat=True))
        raise TenantError(f"unknown plan {plan!r} (choose one of: {codes})")
    tenant = register_tenant(
        slug, name=name, plan=plan_row, server=server or server_for_new_tenant()
    )
    engine = engine_for(tenant.database_server)

    try:
        with engine.template_lock():
            engine.ensure_template()
            tenant.db_password_sealed = engine.create_database(tenant)
        tenant.save(update_fields=["db_password_sealed", "updated_at"])
        password = generate_password()
        with tenant_context(tenant):
            User = get_user_model()
            admin = User(
                username="admin",
                email=admin_email or f"admin@{slug}.{settings.DOMAIN}",
                is_staff=False,
                is_superuser=True,
            )
            validate_password(password, admin)
            admin.set_password(password)
            admin.save()
            admin.groups.add(Group.objects.get(name=ADMINISTRATOR))
        tenant.state = Tenant.ACTIVE
        tenant.save(update_fields=["state", "updated_at"])
    except BaseException:
        # Nothing half-made survives: no database, no role, no catalog row.
        discard_tenant(tenant, engine)
        raise
    return ProvisionedTenant(tenant, "admin", password)
