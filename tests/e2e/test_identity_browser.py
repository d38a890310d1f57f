"""S12/C13/S13 as a person does it, in Chromium: invite, set a password, enrol 2FA,
sign out, sign in again with the code."""

import os
import re

from tests.fixtures import link_in, mails_to, totp
from tests.served import Served, free_port
from tests.tenancy.test_cli import oxygis


def test_invited_user_sets_password_enrols_2fa_and_signs_in(browser, tmp_path):
    """S12: the whole journey of a new user of the demo tenant, in a real browser."""
    served = Served(tmp_path, free_port())
    base = f"https://demo.localhost:{served.port}"
    admin_password = re.search(r"password: (\S+)", served.output())[1]
    # The CA is checked by the TLS tests; the browser profile here does not carry it.
    context = browser.new_context(ignore_https_errors=True)
    page = context.new_page()
    try:
        # The administrator invites a salesperson.
        page.goto(base + "/")
        assert page.url.startswith(base + "/accounts/login/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", admin_password)
        page.click("button:has-text('Sign in')")
        page.click("a:has-text('Users')")
        page.click("a:has-text('Invite a user')")
        page.fill("#id_email", "newbie@demo.example")
        page.fill("#id_first_name", "Nora")
        page.fill("#id_last_name", "Newbie")
        page.check("label:has-text('Salesperson') input")
        page.click("button:has-text('Save')")
        assert "Invitation sent to newbie@demo.example" in page.content()
        page.click("button:has-text('Sign out')")

        # Nora opens the link from her e-mail and chooses a password (the policy applies).
        message = mails_to("newbie@demo.example", folder=tmp_path / "mail")[-1]
        page.goto(link_in(message, "/accounts/invitation/"))
        page.fill("#id_new_password1", "nora-weak")
        page.fill("#id_new_password2", "nora-weak")
        page.click("button:has-text('Set password')")
        assert "an upper-case letter" in page.content()
        page.fill("#id_new_password1", "Nora-Strong-2026!")
        page.fill("#id_new_password2", "Nora-Strong-2026!")
        page.click("button:has-text('Set password')")
        # A new user is welcomed, not told that every session of theirs was ended.
        assert "Your account is ready" in page.content()
        assert "Every session" not in page.content()

        # She signs in by e-mail and turns on two-factor authentication.
        page.goto(base + "/accounts/login/")
        page.fill("#id_username", "newbie@demo.example")
        page.fill("#id_password", "Nora-Strong-2026!")
        page.click("button:has-text('Sign in')")
        assert "Welcome, Nora Newbie" in page.content()
        page.click("a:has-text('Security')")
        page.click("a:has-text('Turn on two-factor authentication')")
        # The QR code is drawn (an SVG the strict CSP allows).
        page.wait_for_function("() => document.querySelector('img.qr').naturalWidth > 0")
        secret = page.inner_text("#totp-secret")
        page.fill("#id_code", totp(secret))
        page.click("button:has-text('Turn on')")
        assert page.locator("#recovery-codes li").count() == 10
        page.click("a:has-text('I have saved them')")
        page.click("button:has-text('Sign out')")

        # Signing in again asks for the code before anything else.
        page.goto(base + "/")
        page.fill("#id_username", "newbie@demo.example")
        page.fill("#id_password", "Nora-Strong-2026!")
        page.click("button:has-text('Sign in')")
        assert "/accounts/2fa/verify/" in page.url
        page.goto(base + "/accounts/security/")
        assert "/accounts/2fa/verify/" in page.url  # nothing else is reachable
        page.fill("#id_code", totp(secret, step_offset=1))
        page.click("button:has-text('Verify')")
        assert page.url == base + "/accounts/security/"  # where she was going
        page.goto(base + "/")
        assert "Welcome, Nora Newbie" in page.content()
        page.screenshot(path=str(tmp_path / "signed-in.png"))
    finally:
        context.close()
        assert served.stop() == 0
        if os.environ.get("OXYGIS_DATABASE_URL"):
            oxygis("tenant", "drop", "demo", "--yes")
