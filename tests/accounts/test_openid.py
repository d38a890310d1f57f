"""Sign-in through the tenant's OpenID Connect provider (S7), against a real provider
(panva's oidc-provider) on loopback, and the attacks on it; the IdP's multi-factor
sign-in as our second factor when the tenant chooses so (S12)."""

from __future__ import annotations

import base64
import hmac
import html
import json
import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings
from joserfc import jwt
from joserfc.jwk import RSAKey

from oxygis.accounts import oidc
from oxygis.accounts.models import OpenIDConfig, SecurityPolicy
from oxygis.audit.models import AuditEvent
from oxygis.tenancy.databases import tenant_context
from tests.fixtures import connect_openid
from tests.oidc_server import ProviderAgent, password_of


def start(personas, client=None, query=""):
    client = client or personas.client()
    response = client.get("/accounts/oidc/start/" + query)
    assert response.status_code == 302, response.content[:300]
    return client, response["Location"]


def callback_path(personas, url: str) -> str:
    assert url.startswith(f"https://{personas.host}/accounts/oidc/callback/"), url
    return url.split(personas.host, 1)[1]


def oidc_sign_in(world, personas, account, client=None):
    """The whole path: our start, the provider's login form, our callback."""
    client, authorization = start(personas, client)
    agent = ProviderAgent(world.server.issuer)
    callback = agent.sign_in(authorization, account)
    response = client.get(callback_path(personas, callback))
    return client, response, agent


def user_of(personas, username):
    with tenant_context(personas.tenant):
        user = get_user_model().objects.filter(username=username).first()
        if user is not None:
            user.roles = sorted(user.groups.values_list("name", flat=True))
        return user


def refusal(client, response) -> str:
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    return client.get("/accounts/login/").content.decode()


@pytest.fixture(autouse=True)
def reset_configs(openid_world):
    yield
    connect_openid(openid_world.first, openid_world.server, "client-first")
    connect_openid(openid_world.second, openid_world.server, "client-second")
    for personas in (openid_world.first, openid_world.second):
        with tenant_context(personas.tenant):
            SecurityPolicy.objects.update(two_factor=SecurityPolicy.TWO_FACTOR_OPTIONAL)


def test_a_person_of_the_provider_signs_in_and_is_created_just_in_time(openid_world):
    """S7: "Sign in with ..." on the sign-in page; the provider's person gets a user here
    at their first sign-in, with the roles of their groups and no password of ours."""
    first = openid_world.first
    assert "Sign in with Test IdP" in first.client().get("/accounts/login/").content.decode()
    client, response, _ = oidc_sign_in(openid_world, first, "olivia")
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/sales/orders/").status_code == 200
    olivia = user_of(first, "olivia")
    assert (olivia.source, olivia.email, olivia.roles) == (
        "oidc",
        "olivia@idp.test",
        ["Salesperson"],
    )
    assert olivia.external_id == f"{openid_world.server.issuer} olivia"
    assert not olivia.has_usable_password()
    # Again: the same user, nothing new to record.
    oidc_sign_in(openid_world, first, "olivia")
    with tenant_context(first.tenant):
        assert AuditEvent.objects.filter(action="oidc.user_created", target="olivia").count() == 1
        assert AuditEvent.objects.filter(action="login.success", target="olivia").count() == 2


def test_a_person_with_no_mapped_group_is_refused(openid_world):
    """S7: only the claim values the administrator mapped to roles let people in."""
    client, response, _ = oidc_sign_in(openid_world, openid_world.first, "nina")
    assert "no role in this workspace" in refusal(client, response)
    assert user_of(openid_world.first, "nina") is None


def test_a_callback_this_browser_did_not_start_is_refused(openid_world):
    """S7 (state): a callback carried to another browser (login CSRF: an attacker making
    the victim sign in as the attacker) is refused; so is the same callback twice."""
    first = openid_world.first
    _, authorization = start(first)
    callback = ProviderAgent(openid_world.server.issuer).sign_in(authorization, "olivia")
    victim = first.client()
    response = victim.get(callback_path(first, callback))
    assert "not started here" in refusal(victim, response)
    # A state of this browser's, but another flow's code: the state does not match.
    victim, _ = start(first, victim)
    response = victim.get(callback_path(first, callback))
    assert "not started here" in refusal(victim, response)
    assert victim.get("/").status_code == 302  # not signed in


def test_a_replayed_callback_is_refused(openid_world):
    """S7: the state is spent by the first use; the code too, at the provider."""
    first = openid_world.first
    client, authorization = start(first)
    callback = ProviderAgent(openid_world.server.issuer).sign_in(authorization, "olivia")
    assert client.get(callback_path(first, callback))["Location"] == "/"
    client.post("/accounts/logout/")
    response = client.get(callback_path(first, callback))
    assert "not started here" in refusal(client, response)


def test_an_injected_code_fails_pkce(openid_world):
    """S7 (PKCE): a code stolen from the victim's flow, put into the attacker's own
    flow (right state), cannot be exchanged: the attacker's verifier is not the one the
    code was issued for."""
    first = openid_world.first
    _, victim_authorization = start(first)
    stolen = ProviderAgent(openid_world.server.issuer).sign_in(victim_authorization, "oscar")
    code = parse_qs(urlsplit(stolen).query)["code"][0]
    attacker, attacker_authorization = start(first)
    state = parse_qs(urlsplit(attacker_authorization).query)["state"][0]
    query = parse_qs(urlsplit(attacker_authorization).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"]
    response = attacker.get(f"/accounts/oidc/callback/?code={code}&state={state}")
    assert "refused this sign-in" in refusal(attacker, response)
    assert attacker.get("/").status_code == 302  # not signed in


def test_another_tenants_client_cannot_sign_in_here(openid_world):
    """S7: the same provider serves two tenants: a callback of the first tenant's flow
    at the second's address is refused, and an ID token made for the first's client is
    refused by the second's (audience)."""
    first, second = openid_world.first, openid_world.second
    _, authorization = start(first)
    callback = ProviderAgent(openid_world.server.issuer).sign_in(authorization, "olivia")
    path = callback_path(first, callback)
    client, _ = start(second)
    state = parse_qs(urlsplit(callback).query)["state"][0]
    response = client.get(path)
    assert "not started here" in refusal(client, response)
    assert state  # the first tenant's state: unknown to the second tenant's session
    assert user_of(second, "olivia") is None


# --- forged and altered ID tokens, verified with the provider's real keys --------------------
def _metadata_and_config(world, personas):
    with tenant_context(personas.tenant):
        config = OpenIDConfig.current()
    return oidc.discover(config, refresh=True), config


def _claims(world, **overrides):
    now = int(time.time())
    claims = {
        "iss": world.server.issuer,
        "sub": "olivia",
        "aud": "client-first",
        "exp": now + 300,
        "iat": now,
        "nonce": "the-nonce",
        **overrides,
    }
    return {k: v for k, v in claims.items() if v is not None}


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _signed(world, claims, key=None, alg="RS256"):
    return jwt.encode({"alg": alg, "kid": "test-signing-key"}, claims, key or world.server.key)


@pytest.mark.parametrize(
    "case",
    [
        "wrong issuer",
        "wrong audience",
        "expired",
        "nonce replayed",
        "no nonce",
        "alg none",
        "HS256 with the public key",
        "another key",
        "several audiences, azp another",
    ],
)
def test_forged_or_altered_id_tokens_are_refused(openid_world, case):
    """S7: the ID token must be signed by the provider's key with an asymmetric algorithm,
    name the issuer and this client, be unexpired, and carry this flow's nonce."""
    world = openid_world
    metadata, config = _metadata_and_config(world, world.first)
    good = _signed(world, _claims(world))
    assert oidc.verify_id_token(config, metadata, good, nonce="the-nonce")["sub"] == "olivia"
    if case == "wrong issuer":
        token = _signed(world, _claims(world, iss="https://evil.example"))
    elif case == "wrong audience":
        token = _signed(world, _claims(world, aud="client-second"))
    elif case == "expired":
        token = _signed(
            world, _claims(world, exp=int(time.time()) - 3600, iat=int(time.time()) - 7200)
        )
    elif case == "nonce replayed":
        token = _signed(world, _claims(world, nonce="another-flows-nonce"))
    elif case == "no nonce":
        token = _signed(world, _claims(world, nonce=None))
    elif case == "alg none":
        token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(world))}."
    elif case == "HS256 with the public key":
        # Algorithm confusion: an HMAC keyed with the provider's public key, which anyone
        # can fetch (libraries refuse to make such a key: made by hand).
        signing_input = (
            f"{_b64({'alg': 'HS256', 'kid': 'test-signing-key'})}.{_b64(_claims(world))}"
        )
        mac = hmac.new(world.server.key.as_pem(private=False), signing_input.encode(), "sha256")
        token = f"{signing_input}.{base64.urlsafe_b64encode(mac.digest()).rstrip(b'=').decode()}"
    elif case == "another key":
        intruder = RSAKey.generate_key(2048, parameters={"kid": "test-signing-key"})
        token = _signed(world, _claims(world), key=intruder)
    else:
        token = _signed(world, _claims(world, aud=["client-first", "client-x"], azp="client-x"))
    with pytest.raises(oidc.SignInRefused):
        oidc.verify_id_token(config, metadata, token, nonce="the-nonce")


def test_a_discovery_document_naming_another_issuer_is_refused(openid_world):
    """S7: the configured issuer must be the one the provider names (Discovery 4.3):
    here the same provider reached as localhost, which it does not call itself. The
    sign-in cannot start, and cannot be switched on."""
    first = openid_world.first
    other_name = openid_world.server.issuer.replace("127.0.0.1", "localhost")
    connect_openid(first, openid_world.server, "client-first", issuer=other_name)
    client = first.client()
    response = client.get("/accounts/oidc/start/")
    assert response["Location"] == "/accounts/login/"
    assert "cannot be reached" in client.get("/accounts/login/").content.decode()
    with tenant_context(first.tenant):
        config = OpenIDConfig.current()
        with pytest.raises(oidc.OpenIDError, match="names the issuer"):
            oidc.discover(config, refresh=True)


# --- two-factor (S12) ------------------------------------------------------------------------
def test_the_providers_mfa_counts_when_the_tenant_says_so(openid_world):
    """S12: with 2FA required for everyone, a person whose provider sign-in was
    multi-factor (amr otp) goes straight in when the tenant accepts the provider's MFA; a
    password-only sign-in (oscar) must still enrol our TOTP; and with our 2FA chosen,
    everyone must."""
    first = openid_world.first
    with tenant_context(first.tenant):
        SecurityPolicy.objects.update(two_factor=SecurityPolicy.TWO_FACTOR_EVERYONE)
    connect_openid(first, openid_world.server, "client-first", two_factor="idp")
    client, _, _ = oidc_sign_in(openid_world, first, "olivia")
    assert client.get("/sales/orders/").status_code == 200
    client, _, _ = oidc_sign_in(openid_world, first, "oscar")
    assert client.get("/sales/orders/")["Location"].startswith("/accounts/2fa/setup/")
    # acr can be the sign as well.
    connect_openid(
        first,
        openid_world.server,
        "client-first",
        two_factor="idp",
        accepted_amr="",
        accepted_acr="urn:test:mfa",
    )
    client, _, _ = oidc_sign_in(openid_world, first, "olivia")
    assert client.get("/sales/orders/").status_code == 200
    connect_openid(first, openid_world.server, "client-first", two_factor="ours")
    client, _, _ = oidc_sign_in(openid_world, first, "olivia")
    assert client.get("/sales/orders/")["Location"].startswith("/accounts/2fa/setup/")


# --- sign-out, re-authentication, passwords -------------------------------------------------
def test_signing_out_here_signs_out_at_the_provider(openid_world):
    """S7 (RP-initiated logout): sign-out sends the browser to the provider's end-session
    endpoint with the ID token, which comes back to our sign-in page; the provider then
    asks for the password again."""
    first = openid_world.first
    client, _, agent = oidc_sign_in(openid_world, first, "olivia")
    response = client.post("/accounts/logout/")
    end_session = re.search(r'id="oidc-sign-out" href="([^"]+)"', response.content.decode())[1]
    end_session = html.unescape(end_session)
    assert end_session.startswith(openid_world.server.issuer) and "id_token_hint=" in end_session
    assert agent.sign_out(end_session) == f"https://{first.host}/accounts/login/"
    assert client.get("/").status_code == 302
    _, authorization = start(first)
    assert agent.follow(authorization).leaving_to is None  # the provider's login form again


def test_re_authentication_at_the_provider(openid_world):
    """S7/S12: a person of the provider has no password here: to confirm it is them,
    they sign in at the provider again (prompt=login); someone else's sign-in there ends
    the session."""
    first = openid_world.first
    client, _, agent = oidc_sign_in(openid_world, first, "oscar")
    with tenant_context(first.tenant):
        session = client.session
        session["oxygis_auth_at"] = 0
        session.save()
    response = client.get("/settings/sign-in/")
    assert response["Location"].startswith("/accounts/reauth/")
    page = client.get(response["Location"]).content.decode()
    assert "Confirm with Test IdP" in page
    client, authorization = start(first, client, "?reauth=1&next=/settings/sign-in/")
    assert "prompt=login" in authorization
    callback = agent.sign_in(authorization, "oscar")
    assert client.get(callback_path(first, callback))["Location"] == "/settings/sign-in/"
    assert client.get("/settings/sign-in/").status_code == 200
    # Confirming as another person: the session ends.
    with tenant_context(first.tenant):
        session = client.session
        session["oxygis_auth_at"] = 0
        session.save()
    client, authorization = start(first, client, "?reauth=1&next=/settings/sign-in/")
    callback = agent.sign_in(authorization, "olivia")
    response = client.get(callback_path(first, callback))
    assert "as someone else" in refusal(client, response)
    assert client.get("/").status_code == 302


def test_local_passwords_stop_when_the_provider_replaces_them(openid_world):
    """S7: with "local passwords stop", only break-glass administrators keep theirs."""
    first = openid_world.first
    connect_openid(first, openid_world.server, "client-first", passwords_off=True)
    response = first.client().post(
        "/accounts/login/", {"username": first.member_username, "password": first.member_password}
    )
    assert response.status_code == 200
    with tenant_context(first.tenant):
        get_user_model().objects.filter(username=first.owner_username).update(break_glass=True)
    try:
        first.client().sign_in(first.owner_username, first.owner_password)
    finally:
        with tenant_context(first.tenant):
            get_user_model().objects.filter(username=first.owner_username).update(break_glass=False)
    connect_openid(first, openid_world.server, "client-first", passwords_off=False)
    first.client().sign_in(first.member_username, first.member_password)


def test_a_verified_email_takes_over_a_local_account_once(openid_world):
    """S7: a local account with the e-mail the provider verified becomes that person's
    (their history stays theirs); it then answers only to the provider."""
    second = openid_world.second
    with tenant_context(second.tenant):
        User = get_user_model()
        local = User(username="o.roux", email="olivia@idp.test")
        local.set_password("Olivia-local-2026!")
        local.save()
    _, response, _ = oidc_sign_in(openid_world, second, "olivia")
    assert response["Location"] == "/"
    user = user_of(second, "o.roux")
    assert (user.pk, user.source) == (local.pk, "oidc") and not user.has_usable_password()
    assert user_of(second, "olivia") is None
    with tenant_context(second.tenant):
        assert AuditEvent.objects.filter(action="oidc.user_linked", target="o.roux").exists()


# --- the administrator's page ---------------------------------------------------------------
ADMIN_ACTIONS = ("configured", "tested", "switched_on", "switched_off")


def test_administrator_sets_up_tries_and_switches_on(openid_world):
    """S7: the settings page: save (the client secret sealed, never shown), try with a
    person (their claims shown, nobody created), switch on; each step audited."""
    world, second = openid_world, openid_world.second
    with tenant_context(second.tenant):
        OpenIDConfig.objects.all().delete()
    owner = second.client()
    owner.sign_in(second.owner_username, second.owner_password)
    page = owner.get("/settings/sign-in/").content.decode()
    assert f"https://{second.host}/accounts/oidc/callback/" in page
    form = {
        "label": "Acme SSO",
        "issuer": world.server.issuer,
        "client_id": "client-second",
        "client_secret": "second-client-2026",
        "scopes": "openid email profile groups",
        "username_claim": "preferred_username",
        "roles_claim": "groups",
        "role_mapping": "sales = Salesperson",
        "two_factor": "ours",
        "accepted_amr": "mfa otp",
        "accepted_acr": "",
    }
    for field, value, error in [
        ("issuer", "http://idp.example.com", "must use https"),
        ("scopes", "email profile", "must include openid"),
        ("role_mapping", "sales = Emperor", "No such role: Emperor"),
    ]:
        response = owner.post("/settings/sign-in/oidc/", {**form, field: value})
        assert response.status_code == 400 and error in response.content.decode()
    assert owner.post("/settings/sign-in/oidc/", form).status_code == 302
    with tenant_context(second.tenant):
        assert "second-client-2026" not in OpenIDConfig.current().client_secret_sealed
    assert "second-client-2026" not in owner.get("/settings/sign-in/").content.decode()
    # Not on yet: the sign-in page offers nothing; the administrator's try works.
    assert "Acme SSO" not in second.client().get("/accounts/login/").content.decode()
    _, authorization = start(second, owner, "?trial=1")
    callback = ProviderAgent(world.server.issuer).sign_in(authorization, "olivia")
    trial = owner.get(callback_path(second, callback)).content.decode()
    assert "olivia@idp.test" in trial and "Salesperson" in trial
    assert user_of(second, "olivia") is None
    # A member cannot start a try.
    member = second.client()
    member.sign_in(second.member_username, second.member_password)
    assert member.get("/accounts/oidc/start/?trial=1").status_code == 403
    owner.post("/settings/sign-in/oidc/switch/", {"on": "1"})
    assert "Sign in with Acme SSO" in second.client().get("/accounts/login/").content.decode()
    owner.post("/settings/sign-in/oidc/switch/", {"on": "0"})
    with tenant_context(second.tenant):
        actions = list(
            AuditEvent.objects.filter(action__in=[f"oidc.{a}" for a in ADMIN_ACTIONS])
            .order_by("seq")
            .values_list("action", flat=True)
        )
    assert actions == ["oidc.configured", "oidc.tested", "oidc.switched_on", "oidc.switched_off"]


def test_switching_on_needs_a_provider_that_answers(openid_world):
    """S7: an issuer that does not answer keeps the switch off, saying why; an anonymous
    visitor cannot start a flow of a provider that is off."""
    second = openid_world.second
    connect_openid(
        second, openid_world.server, "client-second", enabled=False, issuer="http://127.0.0.1:9"
    )
    assert second.client().get("/accounts/oidc/start/").status_code == 404
    owner = second.client()
    owner.sign_in(second.owner_username, second.owner_password)
    response = owner.post("/settings/sign-in/oidc/switch/", {"on": "1"})
    assert "It cannot be used" in owner.get(response["Location"]).content.decode()
    with tenant_context(second.tenant):
        assert not OpenIDConfig.current().enabled


def test_the_provider_password_is_checked_by_the_provider(openid_world):
    """S7: a wrong password at the provider brings nobody back to us."""
    first = openid_world.first
    _, authorization = start(first)
    agent = ProviderAgent(openid_world.server.issuer)
    response = agent.follow(authorization)
    assert 'name="password"' in response.text
    action = re.search(r'<form method="post" action="([^"]+)"', response.text).group(1)
    response = agent.follow(
        openid_world.server.issuer + action,
        method="POST",
        data={"login": "olivia", "password": password_of("olivia") + "x"},
    )
    assert response.leaving_to is None and "Wrong login or password" in response.text


@override_settings(PRODUCTION=True)
def test_production_refuses_a_provider_on_a_private_address():
    """S7 (SSRF): in production the server never fetches a tenant's "issuer" on a
    loopback, link-local (cloud metadata) or private address, nor over plain http."""
    for url in (
        "https://127.0.0.1",
        "https://169.254.169.254",
        "https://10.0.0.8",
        "http://127.0.0.1:8080",
    ):
        with pytest.raises(ValueError):
            oidc.check_issuer(url)


def test_a_person_deactivated_here_stays_out(openid_world):
    """S7: the provider vouching for a person does not undo a deactivation here."""
    first = openid_world.first
    oidc_sign_in(openid_world, first, "olivia")
    with tenant_context(first.tenant):
        get_user_model().objects.filter(username="olivia").update(is_active=False)
    try:
        client, response, _ = oidc_sign_in(openid_world, first, "olivia")
        assert "disabled" in refusal(client, response)
    finally:
        with tenant_context(first.tenant):
            get_user_model().objects.filter(username="olivia").update(is_active=True)
