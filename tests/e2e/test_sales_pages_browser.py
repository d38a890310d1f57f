"""The sales pages as each role uses them, in Chromium, on a desktop and on a 390 px
phone (issue 15): errors shown where they happen with the input kept, lines edited in
place, confirmations before destructive actions, refusals on a proper page, the order's
history, no action a role may not use, and no page scrolling sideways on a phone."""

import os
import re

import pytest

from tests.e2e.conftest import set_password
from tests.served import Served, free_port
from tests.tenancy.test_cli import oxygis

PASSWORD = "Demo-Pages-2026!"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pages")
    served = Served(folder, free_port())
    admin_password = re.search(r"password: (\S+)", served.output())[1]
    for person in ("sam", "maria", "rita"):
        set_password(folder, person, PASSWORD)
    yield served, f"https://demo.localhost:{served.port}", admin_password
    assert served.stop() == 0
    if os.environ.get("OXYGIS_DATABASE_URL"):
        oxygis("tenant", "drop", "demo", "--yes")


def signed_in(browser, base, username, password=PASSWORD, viewport=DESKTOP):
    context = browser.new_context(ignore_https_errors=True, locale="en-GB", viewport=viewport)
    page = context.new_page()
    page.goto(base + "/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("form[action='/accounts/login/'] button[type=submit]")
    page.wait_for_selector("header nav")
    return context, page


WIDER = """(limit) => [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > limit + 1)
    .slice(0, 5).map(e => e.tagName + '.' + e.className + ' ' + e.textContent.slice(0, 40))"""


def no_sideways_scroll(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    limit = page.viewport_size["width"]
    assert width <= limit, (page.url, width, page.evaluate(WIDER, limit))


def order_numbers(page) -> list[str]:
    return sorted(set(re.findall(r">(SO\d{5})<", page.content())))


def test_a_salesperson_works_a_quotation_on_a_desktop(browser, demo):
    """Sam: a bad quantity shows its error in place and keeps what he typed; a line is
    edited in place; a section is added; removing asks first; confirming an empty copy
    is refused on the order's page; the history tells it all."""
    _served, base, _admin = demo
    context, page = signed_in(browser, base, "sam")
    try:
        assert "My open quotations" in page.inner_text("main")
        page.click("#open-quotations a >> nth=0")
        page.wait_for_selector("#lines")
        total = page.inner_text("#amount-total")
        # 1. A line without product nor tax, at quantity 0: each error next to its
        # field, everything typed kept, nothing added.
        page.fill("#id_description", "Cable drum")
        page.fill("#id_quantity", "0")
        page.fill("#id_unit_price", "12.50")
        page.click("#line-add-form button[type=submit]")
        page.wait_for_selector("#line-add-form .errorlist")
        errors = page.inner_text("#line-add-form")
        assert "greater than or equal to 0.001" in errors
        assert "Choose the tax of a line without a product." in errors
        assert page.input_value("#id_description") == "Cable drum"
        assert page.input_value("#id_unit_price") == "12.50"
        assert page.inner_text("#amount-total") == total  # nothing was added
        page.fill("#id_quantity", "2")
        page.select_option("#id_tax", label="TVA 20 %")
        page.click("#line-add-form button[type=submit]")
        page.wait_for_selector("td:has-text('Cable drum')")
        # 2. Edit it in place.
        row = page.locator("tr:has(td:has-text('Cable drum'))")
        row.locator("a:has-text('Edit')").click()
        page.wait_for_selector("tr.editing")
        page.fill("tr.editing input[name=quantity]", "3")
        page.click("tr.editing button:has-text('Save the line')")
        page.wait_for_selector("tr.editing", state="detached")
        assert "3" in page.locator("tr:has(td:has-text('Cable drum'))").inner_text()
        # 3. A section title.
        page.select_option("#id_kind", "section")
        page.fill("#id_description", "Accessories")
        page.click("#line-add-form button[type=submit]")
        page.wait_for_selector("tr.section:has-text('Accessories')")
        # 4. Removing asks first: dismissed, the line stays; accepted, it goes.
        page.once("dialog", lambda dialog: dialog.dismiss())
        page.locator("tr.section button:has-text('Remove')").click()
        page.wait_for_timeout(300)
        assert page.locator("tr.section").count() == 1
        page.once("dialog", lambda dialog: dialog.accept())
        page.locator("tr.section button:has-text('Remove')").click()
        page.wait_for_selector("tr.section", state="detached")
        # 5. The history, written by each change.
        page.reload()
        history = page.inner_text("#history")
        for step in ("Line added", "Line changed", "Line removed", "Quantity: 2 → 3"):
            assert step in history, step
        # 6. Cancel asks on a page of its own; going back changes nothing.
        page.click(".actions button:has-text('Cancel')")
        page.wait_for_selector("#confirm-question")
        page.click("a:has-text('No, go back')")
        page.wait_for_selector("#lines")
        # 7. Duplicate, empty the copy, then confirm: refused on the order's page.
        page.click("button:has-text('Duplicate')")
        page.wait_for_selector("text=copied from")
        while page.locator("#lines button:has-text('Remove')").count():
            page.once("dialog", lambda dialog: dialog.accept())
            count = page.locator("#lines button:has-text('Remove')").count()
            page.locator("#lines button:has-text('Remove') >> nth=0").click()
            page.wait_for_function(
                f"() => document.querySelectorAll('#lines .row-actions button').length < {count}"
            )
        page.click(".actions button:has-text('Confirm')")
        page.wait_for_selector("#refusal")
        assert "has no lines to confirm" in page.inner_text("#refusal")
        assert page.locator("header nav").count() == 1  # a proper page, not bare text
    finally:
        context.close()


def test_the_read_only_role_is_offered_nothing_it_cannot_do(browser, demo):
    """Rita reads everything and is offered no form: no new quotation, no line form,
    no action button, contacts read-only; the new-quotation address is refused."""
    _served, base, _admin = demo
    context, page = signed_in(browser, base, "rita")
    try:
        assert "Open quotations" in page.inner_text("main")
        assert page.locator("a:has-text('New quotation')").count() == 0
        page.click("nav a:has-text('Orders')")
        assert order_numbers(page) and page.locator("a:has-text('New quotation')").count() == 0
        page.click(f"a:has-text('{order_numbers(page)[0]}')")
        assert page.locator("main form[method=post]").count() == 0
        assert page.locator("#history").count() == 1
        page.click("nav a:has-text('Contacts')")
        page.locator("table.list a >> nth=0").click()
        assert page.locator("#read-only").count() == 1
        assert page.locator("main form[method=post]").count() == 0
        assert page.locator("input[name=name]").is_disabled()
        answer = page.goto(base + "/sales/orders/new/")
        assert answer.status == 403 and "Forbidden" in page.inner_text("main")
    finally:
        context.close()


@pytest.mark.parametrize("username", ["sam", "maria", "rita", "admin"])
def test_no_page_scrolls_sideways_on_a_phone(browser, demo, username):
    """Each role's pages at 390 px: nothing scrolls sideways; the orders list and an
    order's lines stack with every column's label, and the totals stay in view."""
    _served, base, admin_password = demo
    password = admin_password if username == "admin" else PASSWORD
    context, page = signed_in(browser, base, username, password, viewport=PHONE)
    try:
        pages = ["/", "/sales/orders/", "/sales/contacts/", "/sales/products/"]
        if username == "admin":
            pages += ["/settings/roles/", "/settings/users/", "/settings/company/"]
        for path in pages:
            page.goto(base + path)
            no_sideways_scroll(page)
        page.goto(base + "/sales/orders/")
        labels = page.locator("table.stack td[data-label='Customer']").first
        assert labels.evaluate("e => getComputedStyle(e, '::before').content") == '"Customer"'
        page.locator("table.stack a >> nth=0").click()
        page.wait_for_selector("#lines")
        no_sideways_scroll(page)
        box = page.locator("#amount-total").bounding_box()
        assert box is not None and box["x"] + box["width"] <= PHONE["width"]
        if username == "admin":
            page.goto(base + "/settings/roles/")
            page.click("a:has-text('Salesperson')")
            no_sideways_scroll(page)
            assert page.locator("#builtin-role").count() == 1
            page.click("#copy-role")
            assert page.input_value("#id_name") == "Copy of Salesperson"
            assert page.locator("input[value='orders.edit']").is_checked()
    finally:
        context.close()
