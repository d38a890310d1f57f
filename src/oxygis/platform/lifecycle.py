"""A tenant's life cycle as the platform runs it: the one set of actions behind both the
``oxygis tenant`` command and the console, each recorded in the platform's audit log
with who did it (a staff member, or an operator's OS user and host).

Dropping is irreversible: on the console it takes a typed confirmation and a second
platform administrator's approval (``request_drop`` then ``approve_drop``); an operator at
a server's shell drops with ``oxygis tenant drop`` (typed confirmation or ``--yes``).
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from oxygis.tenancy.context import CATALOG
from oxygis.tenancy.models import Plan, Tenant
from oxygis.tenancy.tenants import (
    TenantError,
    drop_tenant,
    resume_tenant,
    set_replica_zones,
    suspend_tenant,
)

from .models import StaffMember, TenantDropRequest
from .provisioning import ProvisionedTenant, provision_tenant
from .staff import platform_record, require


def create(slug: str, *, name: str, plan: str, admin_email: str = "", by, request=None):
    provisioned: ProvisionedTenant = provision_tenant(
        slug, name=name, plan=plan, admin_email=admin_email
    )
    platform_record(
        "tenant.created", by=by, request=request, target=slug, plan=plan, name=name.strip()
    )
    return provisioned


def suspend(tenant: Tenant, *, by, request=None) -> None:
    suspend_tenant(tenant)
    platform_record("tenant.suspended", by=by, request=request, target=tenant.slug)


def resume(tenant: Tenant, *, by, request=None) -> None:
    resume_tenant(tenant)
    platform_record("tenant.resumed", by=by, request=request, target=tenant.slug)


def change_plan(tenant: Tenant, plan_code: str, *, by, request=None) -> None:
    plan = Plan.objects.filter(code=plan_code).first()
    if plan is None:
        codes = ", ".join(Plan.objects.values_list("code", flat=True))
        raise TenantError(f"unknown plan {plan_code!r} (choose one of: {codes})")
    if plan.pk == tenant.plan_id:
        return
    before = tenant.plan.code
    tenant.plan = plan
    tenant.save(update_fields=["plan", "updated_at"])
    platform_record(
        "tenant.plan_changed",
        by=by,
        request=request,
        target=tenant.slug,
        before=before,
        after=plan.code,
    )


def set_replicas(tenant: Tenant, zones: list[str], *, by, request=None) -> None:
    set_replica_zones(tenant, zones)
    platform_record(
        "tenant.replicas_changed", by=by, request=request, target=tenant.slug, zones=zones
    )


def drop(tenant: Tenant, *, by, request=None, approval=None) -> None:
    """Drop now: an operator's command, or the second half of a console drop."""
    slug, tenant_id = tenant.slug, tenant.pk
    drop_tenant(tenant)
    platform_record(
        "tenant.dropped",
        by=by,
        request=request,
        target=slug,
        tenant_id=tenant_id.hex,
        approval=approval,
    )


def _confirm(tenant: Tenant, typed: str) -> None:
    if (typed or "").strip() != tenant.slug:
        raise TenantError(f"type the workspace's address name ({tenant.slug}) to confirm")


def request_drop(tenant: Tenant, *, member: StaffMember, typed: str, request=None):
    require(member, "tenants.drop")
    _confirm(tenant, typed)
    try:
        with transaction.atomic(using=CATALOG):
            asked = TenantDropRequest.objects.create(
                tenant_slug=tenant.slug, tenant_id_value=tenant.pk, requested_by=member
            )
    except IntegrityError:
        raise TenantError(f"dropping {tenant.slug} is already waiting for approval") from None
    platform_record("tenant.drop_requested", by=member.user, request=request, target=tenant.slug)
    return asked


def approve_drop(asked: TenantDropRequest, *, member: StaffMember, typed: str, request=None):
    """The second administrator: never the one who asked."""
    require(member, "tenants.drop")
    if asked.state != TenantDropRequest.PENDING:
        raise TenantError("this drop was already decided")
    if asked.requested_by_id == member.pk:
        raise TenantError("another administrator must approve the drop you asked for")
    tenant = Tenant.objects.select_related("database_server").filter(pk=asked.tenant_id_value)
    tenant = tenant.first()
    if tenant is None:
        raise TenantError("this tenant no longer exists")
    _confirm(tenant, typed)
    taken = TenantDropRequest.objects.filter(pk=asked.pk, state=TenantDropRequest.PENDING).update(
        state=TenantDropRequest.DONE,
        decided_by=member.user.get_username(),
        decided_at=timezone.now(),
    )
    if not taken:
        raise TenantError("this drop was already decided")
    drop(tenant, by=member.user, request=request, approval=asked.pk)


def cancel_drop(asked: TenantDropRequest, *, member: StaffMember, request=None) -> None:
    require(member, "tenants.drop")
    taken = TenantDropRequest.objects.filter(pk=asked.pk, state=TenantDropRequest.PENDING).update(
        state=TenantDropRequest.CANCELLED,
        decided_by=member.user.get_username(),
        decided_at=timezone.now(),
    )
    if taken:
        platform_record(
            "tenant.drop_cancelled", by=member.user, request=request, target=asked.tenant_slug
        )
