"""Findings 1-7 of the attack run (issue 10): privilege and authentication.

Each test names its finding and claim, and fails on the code before the fix."""

import re
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

from oxygis.access.actors import system
from oxygis.accounts.models import SecurityPolicy
from oxygis.accounts.roles import ADMINISTRATOR, SALESPERSON
from oxygis.accounts.sudo import AUTH_AT
from oxygis.core import limiter
from oxygis.tenancy.databases import tenant_context
from tests.accounts.test_signin import make_user
from tests.fixtures import link_in, mails_to, secret_on, totp

PASSWORD = "Hank-pass-2026!"


def custom_role(tenant, name: str, *codenames: str) -> Group:
    with tenant_context(tenant):
        role, _ = Group.objects.get_or_create(name=name)
        role.permissions.set(Permission.objects.filter(codename__in=codenames))
        return role


@pytest.fixture
def hank(alpha):
    """A user whose only role is a custom one holding just "manage users"."""
    role = custom_role(alpha.tenant, "User managers", "manage_users")
    user = make_user(alpha.tenant, "hank", PASSWORD)
    with tenant_context(alpha.tenant):
        user.groups.set([role])
    client = alpha.client()
    client.sign_in("hank", PASSWORD)
    yield user, client
    with tenant_context(alpha.tenant), system(reason="test clean-up"):
        user.delete()


def role_ids(tenant, user) -> set[str]:
    with tenant_context(tenant):
        return set(user.groups.values_list("name", flat=True))


def test_finding_1_a_user_manager_cannot_give_themself_or_others_more_rights(alpha, hank):
    """S13/S6 (finding 1): a user whose role holds only "manage users" cannot give
    themself any role, cannot give anyone a role with rights they lack, cannot invite
    with such a role, and cannot change or deactivate the administrator."""
    user, client = hank
    with tenant_context(alpha.tenant):
        admin_role = Group.objects.get(name=ADMINISTRATOR)
        owner = get_user_model().objects.get(username="admin")
        member = get_user_model().objects.get(username="member")

    # Themself: no form, and a forged POST is refused.
    page = client.get(f"/settings/users/{user.pk}/").content.decode()
    assert "You cannot change your own roles" in page
    assert client.post(f"/settings/users/{user.pk}/", {"roles": [admin_role.pk]}).status_code == 403
    assert role_ids(alpha.tenant, user) == {"User managers"}
    assert client.get("/settings/roles/").status_code == 403
    assert client.get("/settings/backups/").status_code == 403

    # Someone else: the Administrator role is not offered, and forcing it is refused.
    edit = client.get(f"/settings/users/{member.pk}/").content.decode()
    assert f'value="{admin_role.pk}"' not in edit
    client.post(f"/settings/users/{member.pk}/", {"roles": [admin_role.pk], "is_active": "on"})
    assert ADMINISTRATOR not in role_ids(alpha.tenant, member)

    # Inviting with it: refused, nobody is created, no mail goes out.
    invited = client.post(
        "/settings/users/invite/", {"email": "mole@example.test", "roles": [admin_role.pk]}
    )
    assert invited.status_code == 200 and not mails_to("mole@example.test")
    with tenant_context(alpha.tenant):
        assert not get_user_model().objects.filter(email="mole@example.test").exists()

    # The administrator (who holds rights hank lacks) cannot be changed nor locked out.
    refused = client.post(f"/settings/users/{owner.pk}/", {"roles": []})
    assert refused.status_code == 403
    with tenant_context(alpha.tenant):
        owner.refresh_from_db()
        assert owner.is_active and owner.is_superuser

    # What hank holds, hank may give: the member becomes a user manager too.
    own = custom_role(alpha.tenant, "User managers", "manage_users")
    done = client.post(f"/settings/users/{member.pk}/", {"roles": [own.pk], "is_active": "on"})
    assert done.status_code == 302
    assert role_ids(alpha.tenant, member) == {"User managers"}
    with tenant_context(alpha.tenant):
        member.groups.clear()


def test_finding_1_a_role_manager_cannot_write_rights_they_lack_into_a_role(alpha):
    """S13 (finding 1): someone who may edit roles cannot create a role, nor add to their
    own role, a right they do not hold themselves (here: restoring backups)."""
    role = custom_role(alpha.tenant, "Role editors", "manage_roles", "view_auditevent")
    rosa = make_user(alpha.tenant, "rosa", PASSWORD)
    with tenant_context(alpha.tenant):
        rosa.groups.set([role])
    client = alpha.client()
    client.sign_in("rosa", PASSWORD)
    grown = client.post(
        f"/settings/roles/{role.pk}/",
        {"name": "Role editors", "rights": ["backups.restore", "audit.see", "roles.manage"]},
    )
    assert grown.status_code == 422  # not saved: the right is not even offered
    assert 'value="backups.restore"' not in client.get("/settings/roles/new/").content.decode()
    made = client.post("/settings/roles/new/", {"name": "Backdoor", "rights": ["backups.restore"]})
    assert made.status_code == 422
    with tenant_context(alpha.tenant):
        assert not Group.objects.filter(name="Backdoor").exists()
        assert not role.permissions.filter(codename="restore_backups").exists()
    # The action checks it too, whatever form it is given.
    from types import SimpleNamespace

    from oxygis.accounts import actions
    from oxygis.accounts.forms import RoleForm

    with tenant_context(alpha.tenant):
        owner = get_user_model().objects.get(username="admin")
        form = RoleForm({"name": "Backdoor", "rights": ["backups.restore"]}, actor=owner)
        assert form.is_valid()
        with pytest.raises(actions.ActionRefused, match="rights you do not have"):
            actions.save_role(SimpleNamespace(user=rosa), form)
    # Within her own rights she may.
    ok = client.post("/settings/roles/new/", {"name": "Auditors 2", "rights": ["audit.see"]})
    assert ok.status_code == 302
    with tenant_context(alpha.tenant), system(reason="test clean-up"):
        rosa.delete()
        Group.objects.filter(name__in=["Auditors 2", "Role editors"]).delete()


def test_finding_2_lockout_holds_for_the_account_whatever_identifier_is_typed(alpha):
    """S12 (finding 2): guesses through the e-mail address count for the account, and a
    locked account stays locked when its e-mail address is typed instead of its name."""
    make_user(alpha.tenant, "ivy", PASSWORD)
    attacker = alpha.client(REMOTE_ADDR="203.0.113.21")
    for name in ["ivy@example.test", "IVY@EXAMPLE.TEST", "ivy", " Ivy ", "ivy@example.test"]:
        attacker.post("/accounts/login/", {"username": name, "password": "Guess-1234!"})
    for name in ("ivy@example.test", "ivy"):
        locked = attacker.post("/accounts/login/", {"username": name, "password": PASSWORD})
        assert locked.status_code == 429, name
    # The owner, from their own address, is not locked out by the attacker.
    alpha.client(REMOTE_ADDR="198.51.100.21").sign_in("ivy@example.test", PASSWORD)


def test_finding_3_reauthentication_and_password_change_count_as_sign_ins(alpha):
    """S12 (finding 3): wrong passwords on the re-authentication page and the password
    change form count toward the lockout; at the limit the session is ended."""
    make_user(alpha.tenant, "jack", PASSWORD)
    for address, path, field, extra in [
        ("203.0.113.31", "/accounts/reauth/", "secret", {}),
        (
            "203.0.113.32",
            "/accounts/password/",
            "old_password",
            {"new_password1": "Jack-new-2027?", "new_password2": "Jack-new-2027?"},
        ),
    ]:
        thief = alpha.client(REMOTE_ADDR=address)
        thief.sign_in("jack", PASSWORD)
        statuses = [
            thief.post(path, {field: f"Wrong-pass-{i}!", **extra}).status_code for i in range(5)
        ]
        assert statuses[:4] == [200] * 4 and statuses[4] == 429, (path, statuses)
        assert thief.get("/").status_code == 302, path  # signed out: the session is over
        again = alpha.client(REMOTE_ADDR=address)
        refused = again.post("/accounts/login/", {"username": "jack", "password": PASSWORD})
        assert refused.status_code == 429  # the right password does not help now
        with tenant_context(alpha.tenant):
            from oxygis.accounts.actions import unlock

            unlock(None, "jack")


def test_finding_4_spraying_one_password_over_many_names_runs_dry(alpha):
    """S12 (finding 4): 30 names x 1 password from one address: after the shared
    limiter's burst, refused with 429 and Retry-After, before any password is hashed;
    another address is unaffected, and right passwords are never counted."""
    sprayer = alpha.client(REMOTE_ADDR="203.0.113.41")
    responses = [
        sprayer.post("/accounts/login/", {"username": f"user{i}", "password": "Summer-2026!"})
        for i in range(30)
    ]
    statuses = [r.status_code for r in responses]
    burst = int(limiter.SECRET_CHECKS.burst)
    assert statuses[:burst] == [200] * burst
    assert set(statuses[burst:]) == {429}
    assert int(responses[-1]["Retry-After"]) > 0
    assert "Too many attempts" in responses[-1].content.decode()
    alpha.client(REMOTE_ADDR="198.51.100.41").sign_in("member", alpha.member_password)
    office = alpha.client(REMOTE_ADDR="198.51.100.42")
    for _ in range(burst + 5):  # an office signing in all morning is never refused
        office.sign_in("member", alpha.member_password)
        office.post("/accounts/logout/")


def test_finding_5_reset_mails_are_bounded_and_links_use_the_canonical_address(alpha):
    """S12 (finding 5): twelve reset requests for one address send three e-mails, with
    the same answer each time; a request with a forged Host port still e-mails a link
    to the tenant's canonical address. Invitations and customer links likewise."""
    make_user(alpha.tenant, "kate", PASSWORD)
    before = len(mails_to("kate@example.test"))
    for i in range(12):
        asker = alpha.client(REMOTE_ADDR=f"198.51.100.{60 + i}")
        response = asker.post(
            "/accounts/password/reset/",
            {"email": "kate@example.test"},
            HTTP_HOST=f"{alpha.host}:31337",
        )
        assert response.status_code == 302
    sent = mails_to("kate@example.test")[before:]
    assert len(sent) == 3
    for message in sent:
        link = link_in(message, "/accounts/reset/")
        assert urlsplit(link).netloc == alpha.host, link
        assert "31337" not in message.as_string()

    admin = alpha.client()
    admin.sign_in(alpha.owner_username, alpha.owner_password)
    with tenant_context(alpha.tenant):
        seller = Group.objects.get(name=SALESPERSON)
    admin.post(
        "/settings/users/invite/",
        {"email": "lena@example.test", "roles": [seller.pk]},
        HTTP_HOST=f"{alpha.host}:31337",
    )
    invitation = link_in(mails_to("lena@example.test")[-1], "/accounts/invitation/")
    assert urlsplit(invitation).netloc == alpha.host


def test_finding_6_the_pending_2fa_secret_belongs_to_the_session_that_asked(alpha):
    """S12 (finding 6): the secret being enrolled is shown only to the session that
    started the enrolment, and only after a recent authentication: another session of
    the same user (a stolen password) neither reads it nor its QR code."""
    make_user(alpha.tenant, "leo", PASSWORD)
    victim = alpha.client()
    victim.sign_in("leo", PASSWORD)
    secret = secret_on(victim.get("/accounts/2fa/setup/").content.decode())
    victim_qr = victim.get("/accounts/2fa/qr.svg").content

    thief = alpha.client()
    thief.sign_in("leo", PASSWORD)
    stale = thief.session
    with tenant_context(alpha.tenant):
        stale[AUTH_AT] = 0  # the thief's sign-in is no longer recent
        stale.save()
    assert thief.get("/accounts/2fa/qr.svg")["Location"].startswith("/accounts/reauth/")
    thief.post("/accounts/reauth/", {"secret": PASSWORD})
    assert thief.get("/accounts/2fa/qr.svg").content != victim_qr
    assert secret_on(thief.get("/accounts/2fa/setup/").content.decode()) != secret
    # The victim's enrolment still works with the secret their app holds.
    done = victim.post("/accounts/2fa/setup/", {"code": totp(secret)})
    assert done.status_code == 200 and "recovery" in done.content.decode().lower()


def test_finding_7_api_keys_follow_the_two_factor_policy(alpha):
    """S12 (finding 7): once the workspace requires 2FA, the keys of a user without it
    stop working (403, saying why) until they enrol; the keys page says so."""
    user = make_user(alpha.tenant, "mona", PASSWORD)
    with tenant_context(alpha.tenant):
        user.groups.set([Group.objects.get(name=SALESPERSON)])
    client = alpha.client()
    client.sign_in("mona", PASSWORD)
    page = client.post("/accounts/api-keys/", {"name": "sync", "scope": "read", "days": 30})
    token = re.search(r'id="new-api-key">([^<]+)<', page.content.decode())[1]
    api = alpha.client(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.get("/api/v1/orders").status_code == 200
    with tenant_context(alpha.tenant):
        SecurityPolicy.objects.filter(pk=1).update(two_factor=SecurityPolicy.TWO_FACTOR_EVERYONE)
    try:
        refused = api.get("/api/v1/orders")
        assert refused.status_code == 403
        assert "two-factor" in refused.json()["detail"]
        client.sign_in("mona", PASSWORD)
        secret = secret_on(client.get("/accounts/2fa/setup/").content.decode())
        client.post("/accounts/2fa/setup/", {"code": totp(secret)})
        assert "keys work only while it is on" in client.get("/accounts/api-keys/").content.decode()
        assert api.get("/api/v1/orders").status_code == 200
    finally:
        with tenant_context(alpha.tenant):
            SecurityPolicy.objects.filter(pk=1).update(
                two_factor=SecurityPolicy.TWO_FACTOR_OPTIONAL
            )
