"""Sign-in through the tenant's own directory (S7), against a real slapd on loopback that
requires TLS for every operation (tests/directory_server.py)."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings

from oxygis.accounts import actions, directory
from oxygis.accounts.models import DirectoryConfig
from oxygis.audit.models import AuditEvent
from oxygis.tenancy.databases import tenant_context
from tests import directory_server as d
from tests.fixtures import connect_directory

FAILED = "Please enter a correct username and password."
UNAVAILABLE = "directory did not answer"


def sign_in(personas, username, password):
    client = personas.client()
    response = client.post("/accounts/login/", {"username": username, "password": password})
    return client, response


def local_user(tenant, username):
    with tenant_context(tenant):
        user = get_user_model().objects.filter(username=username).first()
        if user is not None:
            user.roles = sorted(user.groups.values_list("name", flat=True))
        return user


def actions_in(tenant, prefix):
    with tenant_context(tenant):
        return list(
            AuditEvent.objects.filter(action__startswith=prefix).values_list("action", "target")
        )


@pytest.fixture
def restore_people(directory_server):
    """Undo a test's changes to the directory's people."""
    changed = []

    def change(uid, attribute, values, original):
        changed.append((uid, attribute, original))
        directory_server.set_attribute(uid, attribute, values)

    yield change
    for uid, attribute, original in reversed(changed):
        directory_server.set_attribute(uid, attribute, original)


def test_directory_person_signs_in_and_is_created_just_in_time(directory_tenant):
    """S7: a person of the directory signs in with the directory's password; their user
    here is made at that moment, from the entry, with the role of their group and no
    password of ours."""
    assert local_user(directory_tenant.tenant, "alice") is None
    client, response = sign_in(directory_tenant, "alice", d.password_of("alice"))
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    alice = local_user(directory_tenant.tenant, "alice")
    assert (alice.source, alice.external_id) == ("ldap", d.person_dn("alice"))
    assert (alice.email, alice.first_name, alice.last_name) == (
        "alice@acme.test",
        "Alice",
        "Martin",
    )
    assert alice.roles == ["Salesperson"]
    assert not alice.has_usable_password()
    # A second sign-in changes nothing, so records nothing.
    sign_in(directory_tenant, "ALICE ", d.password_of("alice"))
    assert actions_in(directory_tenant.tenant, "directory.user_") == [
        ("directory.user_created", "alice")
    ]
    # The administrators' group maps to the Administrator role.
    sign_in(directory_tenant, "adam", d.password_of("adam"))
    assert local_user(directory_tenant.tenant, "adam").roles == ["Administrator"]


@pytest.mark.parametrize(
    "username, password",
    [
        ("alice", "wrong-password"),
        ("nobody", "whatever-2026"),
        # Filter injection: the typed name is escaped, so these match no one.
        ("*", d.password_of("alice")),
        ("alice)(uid=*", d.password_of("alice")),
        ("*)(|(uid=*", d.password_of("alice")),
    ],
)
def test_wrong_passwords_unknown_people_and_filter_injection_are_refused(
    directory_tenant, username, password
):
    """S7: one answer for a wrong password, an unknown name and a crafted filter; no user
    is made."""
    _, response = sign_in(directory_tenant, username, password)
    assert response.status_code == 200 and FAILED in response.content.decode()
    with tenant_context(directory_tenant.tenant):
        assert not get_user_model().objects.filter(source="ldap").exists()


def test_an_empty_password_is_never_an_anonymous_bind(directory_tenant):
    """S7: LDAP takes a bind with an empty password as anonymous, and says yes; the
    sign-in never asks it."""
    with tenant_context(directory_tenant.tenant):
        assert directory.authenticate(DirectoryConfig.active(), "alice", "") is None
        assert local_user(directory_tenant.tenant, "alice") is None


def test_a_person_in_no_mapped_group_cannot_sign_in(directory_tenant):
    """S7: only the groups the administrator mapped to roles let people in."""
    _, response = sign_in(directory_tenant, "dave", d.password_of("dave"))
    assert FAILED in response.content.decode()
    assert local_user(directory_tenant.tenant, "dave") is None


def test_the_directory_disabling_a_person_disables_them_here(directory_tenant, restore_people):
    """S7: checked at each sign-in: a person the directory disabled is refused, their user
    here is disabled, their open sessions end; enabled again, they come back."""
    client, _ = sign_in(directory_tenant, "alice", d.password_of("alice"))
    assert client.get("/").status_code == 200
    restore_people("alice", "employeeType", ["disabled"], [])
    _, response = sign_in(directory_tenant, "alice", d.password_of("alice"))
    assert FAILED in response.content.decode()
    assert not local_user(directory_tenant.tenant, "alice").is_active
    assert client.get("/").status_code == 302  # the open session is gone
    assert ("directory.user_deactivated", "alice") in actions_in(
        directory_tenant.tenant, "directory."
    )
    restore_people("alice", "employeeType", [], ["disabled"])
    _, response = sign_in(directory_tenant, "alice", d.password_of("alice"))
    assert response.status_code == 302
    assert local_user(directory_tenant.tenant, "alice").is_active
    # carol, disabled from the start, never gets a user here.
    sign_in(directory_tenant, "carol", d.password_of("carol"))
    assert local_user(directory_tenant.tenant, "carol") is None


def test_an_administrators_deactivation_here_holds(directory_tenant):
    """S7: a person the tenant's administrator deactivated here stays out, though the
    directory still says they are active (an employee blocked in this application
    only); reactivated here, they sign in again."""
    personas = directory_tenant
    sign_in(personas, "alice", d.password_of("alice"))
    owner = personas.client()
    with tenant_context(personas.tenant):
        get_user_model().objects.filter(username=personas.owner_username).update(break_glass=True)
    owner.sign_in(personas.owner_username, personas.owner_password)
    alice_id = local_user(personas.tenant, "alice").pk
    owner.post(f"/settings/users/{alice_id}/", {"is_active": "", "roles": []})
    assert not local_user(personas.tenant, "alice").is_active
    _, response = sign_in(personas, "alice", d.password_of("alice"))
    assert FAILED in response.content.decode()
    assert not local_user(personas.tenant, "alice").is_active
    owner.post(f"/settings/users/{alice_id}/", {"is_active": "on"})
    _, response = sign_in(personas, "alice", d.password_of("alice"))
    assert response.status_code == 302


def test_roles_follow_the_groups_at_each_sign_in(directory_tenant, restore_people):
    """S7: the directory is the source of the roles: moved to another group, a person has
    that group's role at their next sign-in, and the change is audited."""
    sign_in(directory_tenant, "alice", d.password_of("alice"))
    restore_people("alice", "mail", ["alice.martin@acme.test"], ["alice@acme.test"])
    with tenant_context(directory_tenant.tenant):
        config = DirectoryConfig.active()
        config.role_mapping = f"{d.SALES_GROUP} = Sales manager"
        config.save()
    sign_in(directory_tenant, "alice", d.password_of("alice"))
    alice = local_user(directory_tenant.tenant, "alice")
    assert (alice.roles, alice.email) == (["Sales manager"], "alice.martin@acme.test")
    assert ("directory.user_updated", "alice") in actions_in(directory_tenant.tenant, "directory.")


def test_local_passwords_stop_while_the_directory_is_on_except_break_glass(directory_tenant):
    """S7: with the directory on, local passwords open nothing, except the administrators'
    who kept theirs as break-glass access; off again, they work again."""
    personas = directory_tenant
    _, response = sign_in(personas, personas.member_username, personas.member_password)
    assert FAILED in response.content.decode()
    _, response = sign_in(personas, personas.owner_username, personas.owner_password)
    assert FAILED in response.content.decode()
    with tenant_context(personas.tenant):
        owner = get_user_model().objects.get(username=personas.owner_username)
        owner.break_glass = True
        owner.save()
        member = get_user_model().objects.get(username=personas.member_username)
        member.break_glass = True  # not an administrator: the flag alone opens nothing
        member.save()
    _, response = sign_in(personas, personas.owner_username, personas.owner_password)
    assert response.status_code == 302
    _, response = sign_in(personas, personas.member_username, personas.member_password)
    assert FAILED in response.content.decode()
    with tenant_context(personas.tenant):
        DirectoryConfig.objects.update(enabled=False)
    _, response = sign_in(personas, personas.member_username, personas.member_password)
    assert response.status_code == 302


def test_another_tenants_directory_changes_nothing_here(directory_tenant, alpha):
    """S7: the directory is one tenant's: the others' users keep their own passwords, and
    the directory's people are nobody there."""
    alpha.client().sign_in(alpha.member_username, alpha.member_password)
    _, response = sign_in(alpha, "alice", d.password_of("alice"))
    assert FAILED in response.content.decode()
    assert local_user(alpha.tenant, "alice") is None


def test_a_directory_with_an_unknown_certificate_is_refused(directory_tenant, directory_server):
    """S7: TLS is verified: a directory whose certificate no trusted authority signed (a
    man in the middle) is not sent the password; the person is told the directory did not
    answer, and break-glass administrators still get in."""
    connect_directory(directory_tenant.tenant, directory_server, ca_certificate="")
    _, response = sign_in(directory_tenant, "alice", d.password_of("alice"))
    assert UNAVAILABLE in response.content.decode()
    assert local_user(directory_tenant.tenant, "alice") is None
    # LDAPS (TLS from the first byte) with the right authority works as StartTLS does.
    connect_directory(directory_tenant.tenant, directory_server, url=directory_server.ldaps_url)
    _, response = sign_in(directory_tenant, "alice", d.password_of("alice"))
    assert response.status_code == 302


def test_a_frozen_directory_does_not_hang_the_sign_in(directory_tenant, directory_server):
    """S7: a directory that accepts the connection and never answers (SIGSTOP) costs a
    sign-in the configured timeout, then the person is told; a break-glass administrator
    signs in meanwhile."""
    with tenant_context(directory_tenant.tenant):
        owner = get_user_model().objects.get(username=directory_tenant.owner_username)
        owner.break_glass = True
        owner.save()
    directory_server.pause()
    try:
        with override_settings(DIRECTORY_TIMEOUT=1):
            started = time.monotonic()
            _, response = sign_in(directory_tenant, "alice", d.password_of("alice"))
            # A hang detector, not a speed target: without timeouts this never returns.
            assert time.monotonic() - started < 30
            assert UNAVAILABLE in response.content.decode()
            _, response = sign_in(
                directory_tenant, directory_tenant.owner_username, directory_tenant.owner_password
            )
            assert response.status_code == 302
    finally:
        directory_server.resume()


def test_bind_password_is_sealed(directory_tenant):
    """S7: the service account's password is stored sealed: a copy of the tenant's
    database alone does not give it."""
    with tenant_context(directory_tenant.tenant):
        stored = DirectoryConfig.objects.values_list("bind_password_sealed", flat=True).get()
        assert d.SERVICE_PASSWORD not in stored
        assert directory.bind_password(DirectoryConfig.current()) == d.SERVICE_PASSWORD


def test_sudo_with_a_directory_password(directory_tenant):
    """S7/S12: re-authentication of a directory user checks the directory's password."""
    client, _ = sign_in(directory_tenant, "adam", d.password_of("adam"))
    response = client.post(
        "/accounts/reauth/?next=/accounts/security/", {"secret": "not-the-password"}
    )
    assert response.status_code == 200
    response = client.post(
        "/accounts/reauth/?next=/accounts/security/", {"secret": d.password_of("adam")}
    )
    assert response.status_code == 302 and response["Location"] == "/accounts/security/"


def test_break_glass_rules(directory_tenant):
    """S7: only an administrator with a local password keeps one; one who is not a
    directory account cannot give it up while the directory is on (locked out)."""

    class Request:
        META = {"REMOTE_ADDR": "127.0.0.1"}

    with tenant_context(directory_tenant.tenant):
        users = get_user_model().objects
        request = Request()
        request.user = users.get(username=directory_tenant.member_username)
        with pytest.raises(actions.ActionRefused, match="Only administrators"):
            actions.set_break_glass(request, True)
        request.user = users.get(username=directory_tenant.owner_username)
        actions.set_break_glass(request, True)
        assert users.get(pk=request.user.pk).break_glass
        with pytest.raises(actions.ActionRefused, match="could no longer sign in"):
            actions.set_break_glass(request, False)
