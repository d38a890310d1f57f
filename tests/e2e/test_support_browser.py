"""C14 as people do it, in Chromium: a tenant administrator asks for help; a support
person, new to the console, enrols 2FA, asks for read-only access; the administrator
approves; support enters through the hand-off and reads the orders; everyone in the
workspace sees the banner; the administrator watches it all in the audit log, then
revokes, and support's next click is refused."""

import os
import re

from tests.e2e.conftest import run_cli, set_password, sign_in
from tests.fixtures import totp, unique_slug
from tests.served import Served, free_port
from tests.tenancy.test_cli import oxygis

ADMIN_PASSWORD = "Demo-Admin-2026!x"
STAFF_PASSWORD = "Console-Owl-2026!x"


def test_ticket_grant_approval_support_session_and_audit(browser, tmp_path):
    """C14, C17: ticket -> grant -> approval -> support session -> audit -> revoked."""
    served = Served(tmp_path, free_port())
    demo = f"https://demo.localhost:{served.port}"
    console = f"https://console.localhost:{served.port}"
    username = f"ana-{unique_slug()}"
    set_password(tmp_path, "admin", ADMIN_PASSWORD)
    run_cli(
        tmp_path,
        "staff",
        "create",
        username,
        "--email",
        f"{username}@oxygis.example",
        "--name",
        "Ana Lima",
        "--role",
        "support",
        password=STAFF_PASSWORD,
    )
    customer = browser.new_context(ignore_https_errors=True)
    staff = browser.new_context(ignore_https_errors=True)  # no shared cookies
    try:
        admin = customer.new_page()
        sign_in(admin, demo, "admin", ADMIN_PASSWORD)
        admin.click("a:has-text('Support')")
        admin.click("a:has-text('Ask Oxygis support for help')")
        admin.fill("#id_subject", "Order totals look wrong")
        admin.select_option("#id_category", "question")
        admin.fill("#id_body", "SO00001 shows a total I do not expect.")
        admin.click("button:has-text('Save')")
        ticket = re.search(r"#(\d+) Order totals look wrong", admin.inner_text("h1"))[1]

        # Support's first sign-in: the console shows nothing but 2FA enrolment.
        page = staff.new_page()
        sign_in(page, console, username, STAFF_PASSWORD)
        assert "/accounts/2fa/setup/" in page.url
        secret = page.inner_text("#totp-secret").strip()
        page.fill("#id_code", totp(secret))
        page.click("button:has-text('Turn on')")
        page.click("a:has-text('I have saved them')")
        page.click("a:has-text('Tickets')")
        page.click("a:has-text('Order totals look wrong')")
        page.select_option("#id_scope", "read")
        page.select_option("#id_minutes", "60")
        page.fill("#id_reason", "Check the totals of SO00001")
        page.click("button:has-text('Ask for access')")
        assert "Waiting for approval" in page.content()

        # The administrator approves in the instance.
        admin.reload()
        admin.click("button:has-text('Approve')")
        assert "Staff access approved" in admin.content()

        # Support enters through the one-time hand-off, as "Support: Ana Lima".
        page.reload()
        page.click("button:has-text('Open workspace')")
        page.click("a:has-text('Enter the workspace')")
        assert page.url.startswith(demo)
        assert "Support: Ana Lima" in page.content()
        page.click("a:has-text('Orders')")
        page.click("a:has-text('SO00001')")
        assert "SO00001" in page.inner_text("h1")

        # Every user of the workspace sees the banner; the admin reads the audit trail.
        admin.goto(demo + "/")
        banner = admin.inner_text(".support-banner")
        assert "Support (Ana Lima) is connected until" in banner and f"ticket #{ticket}" in banner
        admin.goto(demo + "/settings/audit/?action=support.request")
        trail = admin.inner_text("table.list")
        assert "Support: Ana Lima" in trail and "/sales/orders/" in trail
        assert f"ticket: {ticket}" in trail

        # Revoked: support's next click ends there.
        admin.goto(demo + f"/settings/support/{ticket}/")
        admin.click("button:has-text('Revoke now')")
        page.click("a:has-text('Orders')")
        assert "Support session ended" in page.content()
    finally:
        customer.close()
        staff.close()
        assert served.stop() == 0
        if os.environ.get("OXYGIS_DATABASE_URL"):
            oxygis("tenant", "drop", "demo", "--yes")
