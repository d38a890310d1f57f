"""The tenant admin's backups page and side-by-side restore (C4), with the personas:
anonymous, member without the right, another tenant's owner, and the owner."""

from __future__ import annotations

from oxygis.backups import service
from oxygis.backups.models import Restore
from oxygis.backups.worker import Worker
from oxygis.platform.provisioning import drop_tenant
from oxygis.tenancy.models import Tenant

from .conftest import sales_snapshot


def test_backups_page_is_for_administrators_only(alpha, bravo, sites):
    """C4, S13: anonymous is sent to sign in, a member gets 403, and another tenant's
    backup id is not found from this tenant's host."""
    backup = service.run_backup(service.tenant_target(alpha.tenant), sites=sites)
    anonymous = alpha.client()
    response = anonymous.get("/settings/backups/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    member = alpha.client()
    member.sign_in(alpha.member_username, alpha.member_password)
    assert member.get("/settings/backups/").status_code == 403
    assert member.post(f"/settings/backups/{backup.id}/restore/").status_code == 403
    outsider = bravo.client()
    outsider.sign_in(bravo.owner_username, bravo.owner_password)
    # Bravo's owner, on bravo's host, asking for alpha's backup: not found.
    assert outsider.post(f"/settings/backups/{backup.id}/restore/").status_code == 404
    page = outsider.get("/settings/backups/").content.decode()
    assert backup.short_id not in page
    assert not Restore.objects.filter(backup=backup).exists()


def test_owner_restores_side_by_side_from_the_settings_page(alpha, sites, world):
    """C4: the owner starts a side-by-side restore; the worker carries it out; a new
    workspace holds the data as it was, the current one is untouched, both audited."""
    from oxygis.audit.models import AuditEvent
    from oxygis.tenancy.databases import forget_tenant_database, tenant_context

    original = sales_snapshot(alpha.tenant)
    backup = service.run_backup(service.tenant_target(alpha.tenant), sites=sites)
    owner = alpha.client()
    owner.sign_in(alpha.owner_username, alpha.owner_password)
    page = owner.get("/settings/backups/")
    assert page.status_code == 200 and backup.short_id in page.content.decode()
    response = owner.post(f"/settings/backups/{backup.id}/restore/")
    assert response.status_code == 302 and response["Location"] == "/settings/backups/"
    run = Restore.objects.get(backup=backup)
    assert run.state == Restore.QUEUED and alpha.owner_username in run.requested_by

    Worker(sites=sites, restore_tests=False).run_queued_restores(sites)
    run.refresh_from_db()
    assert run.state == Restore.DONE, run.detail
    new = Tenant.objects.get(slug=run.new_slug)
    try:
        assert run.new_slug.startswith(alpha.tenant.slug[:20]) and "-restored-" in run.new_slug
        assert sales_snapshot(new) == original
        assert sales_snapshot(alpha.tenant) == original  # the live workspace is untouched
        page = owner.get("/settings/backups/").content.decode()
        assert f"{run.new_slug}.localhost" in page
        with tenant_context(alpha.tenant):
            actions = set(AuditEvent.objects.values_list("action", flat=True))
        forget_tenant_database(alpha.tenant)
        assert {"backup.restore_requested", "backup.restored_side_by_side"} <= actions
    finally:
        drop_tenant(new)


def test_restore_asks_for_the_password_again_after_ten_minutes(alpha, sites):
    """C4, S12: a stale sign-in must re-authenticate before restoring; nothing is queued."""
    from oxygis.accounts.sudo import AUTH_AT
    from oxygis.tenancy.databases import forget_tenant_database, tenant_context

    backup = service.run_backup(service.tenant_target(alpha.tenant), sites=sites)
    owner = alpha.client()
    owner.sign_in(alpha.owner_username, alpha.owner_password)
    with tenant_context(alpha.tenant):  # sessions live in the tenant's database
        session = owner.session
        session[AUTH_AT] = 0
        session.save()
    forget_tenant_database(alpha.tenant)
    response = owner.post(f"/settings/backups/{backup.id}/restore/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/reauth/?next=%2Fsettings%2Fbackups%2F"
    assert not Restore.objects.filter(backup=backup).exists()
    page = owner.get("/settings/backups/")
    assert page.status_code == 302 and page["Location"].startswith("/accounts/reauth/")
