"""The tenant administrator's sign-in methods page (S7): set up the directory, try it with
a user, switch it on, keep a break-glass password; every step audited."""

from __future__ import annotations

import pytest

from oxygis.accounts.models import DirectoryConfig
from oxygis.audit.models import AuditEvent
from oxygis.platform.provisioning import drop_tenant
from oxygis.tenancy.databases import tenant_context
from tests import directory_server as d
from tests.fixtures import _make, unique_slug

PAGE = "/settings/sign-in/"


@pytest.fixture
def tenant(directory_server):
    personas = _make(unique_slug("dirset"), "Directory Settings Co")
    yield personas
    drop_tenant(personas.tenant)


def settings_form(server, **overrides):
    return {
        "url": server.url,
        "ca_certificate": server.ca_pem,
        "bind_dn": d.SERVICE_DN,
        "bind_password": d.SERVICE_PASSWORD,
        "user_base": f"ou=people,{d.BASE}",
        "user_filter": "(uid={username})",
        "username_attribute": "uid",
        "active_filter": "(!(employeeType=disabled))",
        "email_attribute": "mail",
        "first_name_attribute": "givenName",
        "last_name_attribute": "sn",
        "group_base": f"ou=groups,{d.BASE}",
        "group_filter": "(&(objectClass=groupOfNames)(member={user_dn}))",
        "role_mapping": f"{d.SALES_GROUP} = Salesperson\n{d.ADMINS_GROUP} = Administrator",
        **overrides,
    }


def audit_actions(tenant):
    with tenant_context(tenant):
        return list(
            AuditEvent.objects.filter(action__startswith="directory.")
            .order_by("seq")
            .values_list("action", flat=True)
        )


def test_only_administrators_reach_the_page(tenant, bravo):
    """S7: anonymous -> sign-in page; a member -> 403; the owner -> the page; another
    tenant's owner has no account here."""
    assert tenant.client().get(PAGE)["Location"].startswith("/accounts/login/")
    member = tenant.client()
    member.sign_in(tenant.member_username, tenant.member_password)
    for url in (PAGE, "/settings/sign-in/directory/", "/settings/sign-in/directory/switch/"):
        assert member.post(url, {"on": "1"}).status_code == 403
    owner = tenant.client()
    owner.sign_in(tenant.owner_username, tenant.owner_password)
    assert "Not set up" in owner.get(PAGE).content.decode()
    outsider = tenant.client()
    response = outsider.post(
        "/accounts/login/", {"username": bravo.owner_username, "password": bravo.owner_password}
    )
    assert response.status_code == 200  # no such account on this tenant


@pytest.mark.parametrize(
    "field, value, error",
    [
        ("url", "http://127.0.0.1:389", "ldaps://host:636"),
        ("url", "ldap://127.0.0.1:389/dc=x?uid", "only a host and a port"),
        ("user_filter", "(uid=alice)", "{username}"),
        ("user_filter", "uid={username}))", "not an LDAP filter"),
        ("bind_dn", "not a dn", "not a DN"),
        ("role_mapping", f"{d.SALES_GROUP} = Emperor", "No such role: Emperor"),
        ("role_mapping", "just words", "line 1"),
        ("ca_certificate", "-----BEGIN CERTIFICATE-----\nnope", "not a PEM certificate"),
    ],
)
def test_bad_settings_are_refused_with_a_reason(tenant, directory_server, field, value, error):
    """S7: a setting that cannot work is refused, saying why, and nothing is saved."""
    owner = tenant.client()
    owner.sign_in(tenant.owner_username, tenant.owner_password)
    response = owner.post(
        "/settings/sign-in/directory/", settings_form(directory_server, **{field: value})
    )
    assert response.status_code == 400
    assert error in response.content.decode()
    with tenant_context(tenant.tenant):
        assert DirectoryConfig.current() is None


def test_set_up_try_switch_on_and_sign_in(tenant, directory_server):
    """S7: the administrator's whole path: save the settings (the service password sealed,
    never shown again), try them with a person, switch on; that person then signs in."""
    owner = tenant.client()
    owner.sign_in(tenant.owner_username, tenant.owner_password)
    response = owner.post("/settings/sign-in/directory/", settings_form(directory_server))
    assert response.status_code == 302
    page = owner.get(PAGE).content.decode()
    assert "Off." in page and d.SERVICE_PASSWORD not in page
    with tenant_context(tenant.tenant):
        assert d.SERVICE_PASSWORD not in DirectoryConfig.current().bind_password_sealed

    # Saving again without a password keeps the sealed one.
    form = settings_form(directory_server, bind_password="", user_filter="(|(uid={username}))")
    assert owner.post("/settings/sign-in/directory/", form).status_code == 302

    response = owner.post(
        "/settings/sign-in/directory/try/",
        {"username": "alice", "password": d.password_of("alice")},
    )
    steps = response.content.decode()
    assert "Failed" not in steps
    assert d.person_dn("alice") in steps and "roles: Salesperson" in steps
    response = owner.post("/settings/sign-in/directory/try/", {"username": "carol"})
    assert "would be disabled here" in response.content.decode()
    response = owner.post("/settings/sign-in/directory/try/", {"username": "dave"})
    assert "could not sign in" in response.content.decode()
    with tenant_context(tenant.tenant):
        from django.contrib.auth import get_user_model

        # Trying creates nobody.
        assert not get_user_model().objects.filter(username="alice").exists()

    # The owner keeps a way in before switching on.
    owner.post("/settings/sign-in/break-glass/", {"keep": "1"})
    assert "Kept by: " + tenant.owner_username in owner.get(PAGE).content.decode()
    owner.post("/settings/sign-in/directory/switch/", {"on": "1"})
    assert "<strong>On.</strong>" in owner.get(PAGE).content.decode()

    alice = tenant.client()
    alice.sign_in("alice", d.password_of("alice"))
    assert alice.get("/sales/orders/").status_code == 200  # a Salesperson's page
    # Local passwords no longer work, the break-glass one does.
    member = tenant.client()
    response = member.post(
        "/accounts/login/",
        {"username": tenant.member_username, "password": tenant.member_password},
    )
    assert response.status_code == 200
    tenant.client().sign_in(tenant.owner_username, tenant.owner_password)

    owner.post("/settings/sign-in/directory/switch/", {"on": "0"})
    tenant.client().sign_in(tenant.member_username, tenant.member_password)
    assert audit_actions(tenant.tenant) == [
        "directory.configured",
        "directory.configured",
        "directory.tested",
        "directory.tested",
        "directory.tested",
        "directory.switched_on",
        "directory.user_created",
        "directory.switched_off",
    ]
    with tenant_context(tenant.tenant):
        assert AuditEvent.objects.filter(action="break_glass.kept").count() == 1


def test_switching_on_needs_a_directory_that_answers(tenant, directory_server):
    """S7: a wrong service password (or a directory that cannot be reached) keeps the
    switch off, saying why."""
    owner = tenant.client()
    owner.sign_in(tenant.owner_username, tenant.owner_password)
    response = owner.post("/settings/sign-in/directory/switch/", {"on": "1"})
    assert "Fill in the settings first" in owner.get(response["Location"]).content.decode()
    owner.post(
        "/settings/sign-in/directory/",
        settings_form(directory_server, bind_password="wrong-service-password"),
    )
    response = owner.post("/settings/sign-in/directory/switch/", {"on": "1"})
    page = owner.get(response["Location"]).content.decode()
    assert "service account was refused" in page
    with tenant_context(tenant.tenant):
        assert not DirectoryConfig.current().enabled
    # A GET (say, after a re-authentication) goes back to the page.
    assert owner.get("/settings/sign-in/directory/switch/")["Location"] == PAGE
    assert owner.get("/settings/sign-in/directory/try/")["Location"] == PAGE
    assert owner.get("/settings/sign-in/directory/")["Location"] == PAGE
    assert owner.get("/settings/sign-in/break-glass/")["Location"] == PAGE


def test_changing_the_settings_needs_a_recent_authentication(tenant, directory_server):
    """S7: pointing the tenant at another directory would hand every account to its
    owner: an old session (say, a stolen one) is asked for the password first."""
    from django.test import override_settings

    owner = tenant.client()
    owner.sign_in(tenant.owner_username, tenant.owner_password)
    with override_settings(SUDO_TIMEOUT=-1):
        response = owner.post("/settings/sign-in/directory/", settings_form(directory_server))
        assert response["Location"].startswith("/accounts/reauth/")
        assert owner.get(PAGE)["Location"].startswith("/accounts/reauth/")
    with tenant_context(tenant.tenant):
        assert DirectoryConfig.current() is None
