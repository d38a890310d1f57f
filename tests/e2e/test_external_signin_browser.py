"""S7/S12 as an administrator and their people do it, in Chromium, on a real `oxygis
serve`: connect the company directory (a real slapd) and the identity provider (a real
OpenID provider) from the settings pages, sign in through each, and passkeys (Chromium's
virtual authenticator) as the second factor and for passwordless sign-in."""

from __future__ import annotations

import os
import re

import pytest

from tests import directory_server as d
from tests.e2e.conftest import sign_in
from tests.oidc_server import OpenIDServer, password_of, provider_available
from tests.served import Served, free_port
from tests.tenancy.test_cli import oxygis


@pytest.fixture
def demo(tmp_path):
    """A served demo tenant and its administrator's password; dropped afterwards."""
    served = Served(tmp_path, free_port())
    password = re.search(r"password: (\S+)", served.output())[1]
    yield f"https://demo.localhost:{served.port}", password
    assert served.stop() == 0
    if os.environ.get("OXYGIS_DATABASE_URL"):
        oxygis("tenant", "drop", "demo", "--yes")


def add_virtual_authenticator(context, page) -> None:
    """Chromium's virtual authenticator: a platform passkey provider (as a phone's or a
    laptop's) that verifies its user and answers at once."""
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )


def settings_page(page, base):
    page.goto(base + "/settings/sign-in/")
    assert page.url == base + "/settings/sign-in/"


def test_passkey_as_second_factor_and_passwordless(browser, demo):
    """S12: the administrator adds a passkey (Chromium's virtual authenticator, as a phone
    or a laptop's would), signs in with it alone, and with 2FA required, uses it as the
    second factor after the password."""
    base, password = demo
    context = browser.new_context(ignore_https_errors=True)
    page = context.new_page()
    add_virtual_authenticator(context, page)
    try:
        sign_in(page, base, "admin", password)
        page.click("a:has-text('Security')")
        page.click("a:has-text('Manage your passkeys')")
        page.click("#passkey-register-button")
        page.wait_for_function(
            "() => /complete|registered|success/i.test("
            "document.querySelector('#passkey-register-status-message').textContent)"
        )
        page.reload()
        assert page.locator("#passkey-list tbody tr form").count() == 1
        page.click("button:has-text('Sign out')")

        # Passwordless: the passkey alone.
        page.goto(base + "/accounts/login/")
        page.click("#passkey-verification-button")
        page.wait_for_url(base + "/")
        assert "Sign out" in page.content()

        # 2FA required for everyone: after the password, the passkey is the second factor.
        page.goto(base + "/settings/policy/")
        page.select_option("#id_two_factor", "everyone")
        page.click("button:has-text('Save')")
        page.click("button:has-text('Sign out')")
        sign_in(page, base, "admin", password)
        assert "/accounts/2fa/verify/" in page.url
        page.click("#passkey-verification-button")
        page.wait_for_url(base + "/")
        page.goto(base + "/settings/audit/?action=passkey.added")
        assert "Passkey added" in page.content()
    finally:
        context.close()


def test_directory_connected_from_the_settings_pages(browser, demo, directory_server):
    """S7: the administrator connects the company directory from the settings page, tries
    it with a person, keeps a break-glass password and switches it on; that person then
    signs in with their directory password, and a person the directory disabled cannot."""
    base, password = demo
    context = browser.new_context(ignore_https_errors=True)
    page = context.new_page()
    try:
        sign_in(page, base, "admin", password)
        page.click("a:has-text('Users')")
        page.click("a:has-text('Sign-in methods')")
        page.fill("#directory #id_url", directory_server.url)
        page.fill("#directory #id_ca_certificate", directory_server.ca_pem)
        page.fill("#directory #id_bind_dn", d.SERVICE_DN)
        page.fill("#directory #id_bind_password", d.SERVICE_PASSWORD)
        page.fill("#directory #id_user_base", f"ou=people,{d.BASE}")
        page.fill("#directory #id_active_filter", "(!(employeeType=disabled))")
        page.fill("#directory #id_group_base", f"ou=groups,{d.BASE}")
        page.fill("#directory #id_role_mapping", f"{d.SALES_GROUP} = Salesperson")
        page.click("button:has-text('Save the directory settings')")
        assert "Settings saved" in page.content()
        page.fill("#directory #id_username", "alice")
        page.fill("#directory #id_password", d.password_of("alice"))
        page.click("#directory button:has-text('Try')")
        steps = page.inner_text("#directory-steps")
        assert "Failed" not in steps and "roles: Salesperson" in steps
        page.click("button:has-text('Keep my local password as break-glass access')")
        page.click("#directory button:has-text('Switch on')")
        assert "Directory sign-in is on" in page.content()
        page.click("button:has-text('Sign out')")

        sign_in(page, base, "alice", d.password_of("alice"))
        assert page.url == base + "/"
        assert "Alice Martin" in page.content()
        # Her passkey is a second factor, not a way around the directory.
        add_virtual_authenticator(context, page)
        page.goto(base + "/accounts/passkeys/")
        page.click("#passkey-register-button")
        page.wait_for_function(
            "() => /complete|registered|success/i.test("
            "document.querySelector('#passkey-register-status-message').textContent)"
        )
        page.click("button:has-text('Sign out')")
        page.goto(base + "/accounts/login/")
        page.click("#passkey-verification-button")
        page.wait_for_function(
            "() => /directory or identity provider first/.test("
            "document.querySelector('#passkey-verification-status-message').textContent)"
        )
        assert page.url.startswith(base + "/accounts/login/")
        sign_in(page, base, "carol", d.password_of("carol"))
        assert "Please enter a correct username and password" in page.content()
        # The administrator's break-glass password still opens the workspace.
        sign_in(page, base, "admin", password)
        assert page.url == base + "/"
    finally:
        context.close()


def test_identity_provider_connected_from_the_settings_pages(browser, demo, tmp_path):
    """S7: the administrator registers the workspace at the identity provider, fills the
    settings page, tries it and switches it on; a person then signs in there (the
    provider's own page) and comes back signed in; signing out signs out there too."""
    if not provider_available():
        message = "node or oidc-provider missing (scripts/ensure-oidc-provider installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    base, password = demo
    provider = OpenIDServer(
        tmp_path,
        [
            {
                "client_id": "demo-workspace",
                "client_secret": "demo-client-secret-2026",
                "redirect_uris": [base + "/accounts/oidc/callback/"],
                "post_logout_redirect_uris": [base + "/accounts/login/"],
            }
        ],
    )
    context = browser.new_context(ignore_https_errors=True)
    page = context.new_page()
    try:
        sign_in(page, base, "admin", password)
        settings_page(page, base)
        assert base + "/accounts/oidc/callback/" in page.inner_text("#openid")
        page.fill("#openid #id_label", "Acme SSO")
        page.fill("#openid #id_issuer", provider.issuer)
        page.fill("#openid #id_client_id", "demo-workspace")
        page.fill("#openid #id_client_secret", "demo-client-secret-2026")
        page.fill("#openid #id_scopes", "openid email profile groups")
        page.fill("#openid #id_role_mapping", "sales = Salesperson")
        page.click("button:has-text('Save the identity provider settings')")
        assert "Settings saved" in page.content()
        page.click("#openid a:has-text('Try with a user')")
        page.fill("#login", "olivia")
        page.fill("#password", password_of("olivia"))
        page.click("button:has-text('Sign in to the IdP')")
        page.wait_for_url(re.compile(r".*/accounts/oidc/callback/.*"))
        assert "olivia@idp.test" in page.inner_text("#oidc-outcome")
        settings_page(page, base)
        page.click("#openid button:has-text('Switch on')")
        assert "Identity provider sign-in is on" in page.content()
        page.click("button:has-text('Sign out')")

        # Olivia, in her own browser.
        context.close()
        context = browser.new_context(ignore_https_errors=True)
        page = context.new_page()
        page.goto(base + "/accounts/login/")
        page.click("a:has-text('Sign in with Acme SSO')")
        page.fill("#login", "olivia")
        page.fill("#password", password_of("olivia"))
        page.click("button:has-text('Sign in to the IdP')")
        page.wait_for_url(base + "/")
        assert "Olivia Roux" in page.content()
        page.click("button:has-text('Sign out')")
        page.click("button:has-text('Yes, sign me out')")  # the provider's own page
        page.wait_for_url(base + "/accounts/login/")
        # Signed out at the provider too: it asks for the password again.
        page.click("a:has-text('Sign in with Acme SSO')")
        assert page.locator("#password").is_visible()
    finally:
        context.close()
        provider.stop()
