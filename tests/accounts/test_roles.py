"""S13 (roles): built-in roles, invitations, role assignment, deactivation, custom roles.

Each admin page is tried as the four personas: anonymous, a member without the right,
the administrator, and a user of another tenant (whose cookie means nothing here)."""

import re
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from oxygis.accounts.roles import ADMINISTRATOR, BUILTIN_ROLES, READ_ONLY, SALESPERSON
from oxygis.audit.models import AuditEvent
from oxygis.tenancy.databases import tenant_context
from tests.fixtures import link_in, mails_to

ADMIN_PAGES = [
    "/settings/users/",
    "/settings/users/invite/",
    "/settings/roles/",
    "/settings/roles/new/",
    "/settings/policy/",
    "/settings/audit/",
]


def test_builtin_roles_exist_in_every_new_tenant(tenant_factory):
    """S13: a new tenant has the four built-in roles; its first admin is Administrator."""
    made = tenant_factory()
    with tenant_context(made.tenant):
        assert set(Group.objects.values_list("name", flat=True)) >= set(BUILTIN_ROLES)
        admin_perms = Group.objects.get(name=ADMINISTRATOR).permissions.count()
        assert admin_perms > 20
        assert (
            get_user_model()
            .objects.get(username="admin")
            .groups.filter(name=ADMINISTRATOR)
            .exists()
        )


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_admin_pages_by_persona(alpha, bravo, path):
    """S13: anonymous -> sign in; member -> 403; another tenant's admin -> anonymous here;
    the administrator -> 200."""
    assert alpha.client().get(path)["Location"].startswith("/accounts/login/")
    member = alpha.client()
    member.sign_in("member", alpha.member_password)
    assert member.get(path).status_code == 403
    outsider = bravo.client()
    outsider.sign_in(bravo.owner_username, bravo.owner_password)
    stranger = alpha.client()
    stranger.cookies = outsider.cookies
    assert stranger.get(path)["Location"].startswith("/accounts/login/")
    admin = alpha.client()
    admin.sign_in(alpha.owner_username, alpha.owner_password)
    assert admin.get(path).status_code == 200


def test_invite_set_password_and_sign_in_with_the_role(alpha):
    """S13: an admin invites by e-mail; the invitee sets a compliant password via a
    single-use link and signs in with the role given."""
    admin = alpha.client()
    admin.sign_in(alpha.owner_username, alpha.owner_password)
    with tenant_context(alpha.tenant):
        salesperson = Group.objects.get(name=SALESPERSON)
    sent = admin.post(
        "/settings/users/invite/",
        {
            "email": "paula@example.test",
            "first_name": "Paula",
            "last_name": "<b>P</b>",
            "roles": [salesperson.pk],
        },
    )
    assert sent.status_code == 302
    again = admin.post("/settings/users/invite/", {"email": "PAULA@example.test"})
    assert "already exists" in again.content.decode()
    message = mails_to("paula@example.test")[-1]
    html_part = message.get_body(preferencelist=("html",)).get_content()
    assert "<b>P</b>" not in html_part and "&lt;b&gt;" in html_part  # escaped (S3)
    path = urlsplit(link_in(message, "/accounts/invitation/")).path

    invitee = alpha.client()
    page = invitee.get(path, follow=True)
    set_url = page.redirect_chain[-1][0]
    weak = invitee.post(set_url, {"new_password1": "paulapaula", "new_password2": "paulapaula"})
    assert "an upper-case letter" in weak.content.decode()
    done = invitee.post(
        set_url,
        {"new_password1": "Paula-pass-2026!", "new_password2": "Paula-pass-2026!"},
        follow=True,
    )
    # A new user is welcomed, not told that "every session was ended".
    last = done.content.decode()
    assert "Your account is ready" in last and "Every session" not in last
    assert "no longer works" in alpha.client().get(path, follow=True).content.decode()
    signed = alpha.client()
    signed.sign_in("paula@example.test", "Paula-pass-2026!")
    with tenant_context(alpha.tenant):
        paula = get_user_model().objects.get(email="paula@example.test")
        assert list(paula.groups.values_list("name", flat=True)) == [SALESPERSON]
        assert AuditEvent.objects.filter(
            action="user.invited", target="paula@example.test"
        ).exists()
        assert AuditEvent.objects.filter(action="invitation.accepted").exists()


def test_roles_change_and_deactivation_end_access(alpha):
    """S13: role changes are audited; a deactivated user is signed out and cannot return."""
    with tenant_context(alpha.tenant):
        user = get_user_model().objects.create(username="quinn", email="quinn@example.test")
        user.set_password("Quinn-pass-2026!")
        user.save()
        read_only = Group.objects.get(name=READ_ONLY)
    quinn = alpha.client()
    quinn.sign_in("quinn", "Quinn-pass-2026!")
    admin = alpha.client()
    admin.sign_in(alpha.owner_username, alpha.owner_password)
    edit = f"/settings/users/{user.pk}/"
    assert admin.post(edit, {"roles": [read_only.pk], "is_active": "on"}).status_code == 302
    assert admin.post(edit, {"roles": [read_only.pk]}).status_code == 302  # deactivate
    assert quinn.get("/").status_code == 302
    refused = alpha.client().post(
        "/accounts/login/", {"username": "quinn", "password": "Quinn-pass-2026!"}
    )
    assert "correct username and password" in refused.content.decode()
    with tenant_context(alpha.tenant):
        actions = list(AuditEvent.objects.filter(target="quinn").values_list("action", flat=True))
    assert "user.roles_changed" in actions and "user.deactivated" in actions


def test_the_last_administrator_cannot_be_removed(tenant_factory):
    """S13: an admin cannot change their own roles or deactivate themselves (no form is
    offered, a POST is refused), and the action layer never leaves no administrator."""
    from oxygis.accounts import actions
    from tests.fixtures import HttpsClient

    made = tenant_factory()
    admin = HttpsClient(f"{made.tenant.slug}.localhost")
    admin.sign_in("admin", made.admin_password)
    with tenant_context(made.tenant):
        me = get_user_model().objects.get(username="admin")
        me.is_superuser = False
        me.save()
    page = admin.get(f"/settings/users/{me.pk}/").content.decode()
    assert "You cannot change your own roles" in page and '<form method="post">' not in page
    response = admin.post(f"/settings/users/{me.pk}/", {"roles": [], "is_active": "on"})
    assert response.status_code == 403
    with tenant_context(made.tenant):
        assert me.groups.filter(name=ADMINISTRATOR).exists()
        with pytest.raises(actions.ActionRefused, match="last administrator"):
            actions._keep_an_administrator(me)


def test_custom_role_from_rights_by_feature(alpha):
    """S13: an admin defines a role from rights grouped by feature, in plain words, with
    no internal model offered; built-in roles open read-only, to be copied."""
    admin = alpha.client()
    admin.sign_in(alpha.owner_username, alpha.owner_password)
    page = admin.get("/settings/roles/new/").content.decode()
    with tenant_context(alpha.tenant):
        from django.contrib.auth.models import Permission

        view_audit = Permission.objects.get(codename="view_auditevent")
        builtin = Group.objects.get(name=SALESPERSON)
    assert 'value="audit.see"' in page and "Read the audit log" in page
    for feature in ("Orders", "Contacts", "Products", "Users and security", "Backups"):
        assert f"<label>{feature}</label>" in page or f">{feature}<" in page
    for internal in ("ordersequence", "portal", "Can add permission", "content type"):
        assert internal not in page  # Django's tables, counters, links: never offered
    created = admin.post("/settings/roles/new/", {"name": "Auditor", "rights": ["audit.see"]})
    assert created.status_code == 302
    with tenant_context(alpha.tenant):
        auditor = Group.objects.get(name="Auditor")
        assert list(auditor.permissions.all()) == [view_audit]
    # Editing orders brings seeing them (the feature's first right).
    edit = admin.post(
        f"/settings/roles/{auditor.pk}/", {"name": "Auditors", "rights": ["orders.edit"]}
    )
    assert edit.status_code == 302
    with tenant_context(alpha.tenant):
        codes = set(Group.objects.get(pk=auditor.pk).permissions.values_list("codename", flat=True))
    assert {"view_order", "change_order", "add_orderline"} <= codes
    assert "view_all_orders" not in codes and "view_auditevent" not in codes
    # A built-in role: read-only (no form to post), with a copy into a custom role.
    shown = admin.get(f"/settings/roles/{builtin.pk}/").content.decode()
    assert 'id="builtin-role"' in shown and '<form method="post">' not in shown
    assert 'value="orders.edit"' in shown and "checked" in shown
    refused = admin.post(f"/settings/roles/{builtin.pk}/", {"name": SALESPERSON, "rights": []})
    assert refused.status_code == 403
    copy = admin.get(f"/settings/roles/new/?copy={builtin.pk}").content.decode()
    assert f"Copy of {SALESPERSON}" in copy
    assert 'value="orders.edit" checked' in copy or re.search(
        r'value="orders.edit"[^>]*checked', copy
    )
    clash = admin.post("/settings/roles/new/", {"name": READ_ONLY})
    assert "built-in role" in clash.content.decode()
