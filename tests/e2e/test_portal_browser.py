"""S9 as people do it, in Chromium: the salesperson e-mails a quotation, the customer
opens the link from the e-mail (written under var/mail/), confirms by typing their
name, and the salesperson then sees the order confirmed."""

import os

from tests.e2e.conftest import set_password, sign_in
from tests.fixtures import link_in, mails_to
from tests.served import Served, free_port
from tests.tenancy.test_cli import oxygis

PASSWORD = "Demo-Seller-2026!"


def test_customer_confirms_from_the_emailed_link(browser, tmp_path):
    """S9: quotation -> e-mail -> link -> confirm -> confirmed for the salesperson."""
    served = Served(tmp_path, free_port())
    base = f"https://demo.localhost:{served.port}"
    set_password(tmp_path, "sam", PASSWORD)
    seller = browser.new_context(ignore_https_errors=True)
    customer = browser.new_context(ignore_https_errors=True)  # no shared cookies
    try:
        page = seller.new_page()
        sign_in(page, base, "sam", PASSWORD)
        page.click("a:has-text('Orders')")
        page.click("a:has-text('SO00001')")
        page.click("button:has-text('Send by e-mail')")
        assert "sent to buyer@acme.example" in page.content()

        url = link_in(
            mails_to("buyer@acme.example", folder=tmp_path / "mail")[-1], "/portal/order/"
        )
        token = url.split("t=", 1)[1]
        visit = customer.new_page()
        response = visit.goto(url)
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "SO00001" in visit.content()
        visit.fill("#id_name", "Alice Martin")
        visit.click("button:has-text('Confirm the order')")
        assert "Confirmed by Alice Martin" in visit.inner_text("#portal-answer")

        page.reload()
        assert "Confirmed" in page.inner_text("h1")
        assert "Customer portal" in page.content()  # the confirmation channel
        # The token never reached the server's log (it travels in the query string,
        # which the access log leaves out).
        assert token not in served.output() and token[:20] not in served.output()
    finally:
        seller.close()
        customer.close()
        assert served.stop() == 0
        if os.environ.get("OXYGIS_DATABASE_URL"):
            oxygis("tenant", "drop", "demo", "--yes")
