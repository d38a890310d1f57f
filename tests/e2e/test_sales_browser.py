"""S6/S13 as people do it, in Chromium: on the demo tenant a salesperson and a sales
manager each see exactly what their role allows, in the pages and through the API."""

import json
import os
import re

from tests.e2e.conftest import set_password
from tests.served import Served, free_port
from tests.tenancy.test_cli import oxygis

PASSWORD = "Demo-Seller-2026!"


def sign_in(page, base, username):
    page.goto(base + "/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button:has-text('Sign in')")


def visible_numbers(page) -> set[str]:
    return set(re.findall(r">(SO\d{5})<", page.content()))


def test_salesperson_and_manager_see_what_their_roles_allow(browser, tmp_path):
    """S13: sam sees his quotations only, maria all of them; the API agrees."""
    served = Served(tmp_path, free_port())
    base = f"https://demo.localhost:{served.port}"
    for person in ("sam", "maria"):
        set_password(tmp_path, person, PASSWORD)
    context = browser.new_context(ignore_https_errors=True)
    page = context.new_page()
    try:
        sign_in(page, base, "maria")
        page.click("a:has-text('Orders')")
        everything = visible_numbers(page)
        assert len(everything) == 3
        page.click("button:has-text('Sign out')")

        sign_in(page, base, "sam")
        page.click("a:has-text('Orders')")
        own = visible_numbers(page)
        assert len(own) == 2 and own < everything
        hidden = sorted(everything - own)[0]
        assert hidden not in page.content()
        # Sam opens his first order, adds a line: the totals update in place (htmx).
        page.click(f"a:has-text('{sorted(own)[0]}')")
        before = page.inner_text("#amount-total")
        page.fill("#id_description", "Extra cable")
        page.fill("#id_quantity", "2")
        page.fill("#id_unit_price", "12.50")
        page.select_option("#id_tax", label="TVA 20 %")
        page.click("button:has-text('Add line')")
        page.wait_for_function(
            f"() => document.querySelector('#amount-total').innerText !== {json.dumps(before)}"
        )
        assert "Extra cable" in page.inner_text("#lines")
        # Maria's order, typed into the address bar: not found, like a made-up one.
        for order_id in range(1, 4):
            response = page.goto(f"{base}/sales/orders/{order_id}/")
            if hidden in page.content():
                raise AssertionError("sam can open maria's order")
            assert response.status in (200, 404)
        assert page.goto(base + "/sales/orders/999999/").status == 404
        # API keys from the settings page, then the API agrees with the pages.
        page.goto(base + "/accounts/api-keys/")
        page.fill("#id_name", "browser test")
        page.click("button:has-text('Create key')")
        token = page.inner_text("#new-api-key")
        api = served.request(
            "demo.localhost",
            "GET",
            "/api/v1/orders?limit=50",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert api.status == 200
        assert {o["number"] for o in json.loads(api.text)["items"]} == own
    finally:
        context.close()
        assert served.stop() == 0
        if os.environ.get("OXYGIS_DATABASE_URL"):
            oxygis("tenant", "drop", "demo", "--yes")
