"""A French business's quotation, in Chromium, from the seller's page to the customer's
acceptance, in French and in English: the formats on the pages, the PDF the customer
downloads (read back with pypdf), and the acceptance of the revision on screen (S9)."""

import io
import os
import re
from pathlib import Path

import pytest
from pypdf import PdfReader

from tests.e2e.conftest import set_password
from tests.fixtures import link_in, mails_to
from tests.served import Served, free_port
from tests.tenancy.test_cli import oxygis

PASSWORD = "Demo-Seller-2026!"


def plain(text: str) -> str:
    """CLDR's no-break spaces (and line breaks) as plain spaces, to compare."""
    return " ".join(text.replace("\u202f", " ").replace("\u00a0", " ").split())


def pdf_text(data: bytes) -> str:
    return plain("\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages))


@pytest.fixture
def demo(tmp_path):
    served = Served(tmp_path, free_port())
    set_password(tmp_path, "sam", PASSWORD)
    yield served, f"https://demo.localhost:{served.port}"
    assert served.stop() == 0
    if os.environ.get("OXYGIS_DATABASE_URL"):
        oxygis("tenant", "drop", "demo", "--yes")


def sign_in(page, base):
    page.goto(base + "/accounts/login/")
    page.fill("#id_username", "sam")
    page.fill("#id_password", PASSWORD)
    page.click("form[action='/accounts/login/'] button[type=submit]")
    page.wait_for_selector("header nav")


JOURNEYS = {
    "fr": {
        "locale": "fr-FR",
        "orders": "Commandes",
        "send": "Envoyer par e-mail",
        "tax": "TVA 5,5 %",
        # The demo's SO00001: 4 desks at 449 € (20 %) and 2 hours at 65 € (5.5 %), and
        # the line added here: 100 € less 10 % at 5.5 %.
        "breakdown": "TVA 5,5 % (5,5 % de 220,00 €)",
        "total": "2 387,30 €",
        "pdf": ["Devis SO00001", "Total HT", "Total TTC", "2 387,30 €", "Remise", "10 %"],
        "pdf_more": ["Démo Mobilier SAS", "SIREN 732829320", "30 jours fin de mois"],
        "download": "Télécharger le PDF",
        "confirm": "Confirmer la commande",
        "confirmed": "Confirmé par Alice Martin",
        "state": "Confirmée",
        "accepted": "Accepté par Alice Martin",
        "changed": "Ce devis a changé depuis que vous l'avez ouvert",
    },
    "en": {
        "locale": "en-GB",
        "orders": "Orders",
        "send": "Send by e-mail",
        "tax": "TVA 5,5 %",
        "breakdown": "TVA 5,5 % (5.5% of €220.00)",
        "total": "€2,387.30",
        "pdf": ["Quotation SO00001", "Total excl. tax", "Total incl. tax", "€2,387.30"],
        "pdf_more": ["Discount", "10%", "Démo Mobilier SAS", "Payment terms"],
        "download": "Download the PDF",
        "confirm": "Confirm the order",
        "confirmed": "Confirmed by Alice Martin",
        "state": "Confirmed",
        "accepted": "Accepted by Alice Martin",
        "changed": "This quotation changed after you opened it",
    },
}


@pytest.mark.parametrize("language", ["fr", "en"])
def test_a_quotation_from_the_seller_to_the_customers_acceptance(browser, demo, language):
    """The seller (browser in ``language``) adds a discounted line at another VAT rate,
    sends the quotation; the customer opens the e-mailed link, downloads and reads the
    PDF, is refused when the seller changed it meanwhile, then accepts the version on
    screen; the seller sees the acceptance, with its revision."""
    words = JOURNEYS[language]
    served, base = demo
    seller = browser.new_context(ignore_https_errors=True, locale=words["locale"])
    customer = browser.new_context(
        ignore_https_errors=True, locale=words["locale"], accept_downloads=True
    )
    try:
        page = seller.new_page()
        sign_in(page, base)
        assert page.locator("html").get_attribute("lang") == language
        page.click(f"nav a:has-text('{words['orders']}')")
        page.click("a:has-text('SO00001')")
        # A line with a 10 % discount at the reduced rate: 100 x 0.9 = 90 at 5.5 %.
        page.fill("#id_description", "Livraison et montage")
        page.fill("#id_quantity", "1")
        page.fill("#id_unit_price", "100")
        page.fill("#id_discount", "10")
        page.select_option("#id_tax", label=words["tax"])
        page.click("#lines form[hx-post$='/lines/'] button[type=submit]")
        page.wait_for_selector("text=Livraison et montage")
        assert words["breakdown"] in plain(page.inner_text("#lines"))
        assert plain(page.inner_text("#amount-total")) == words["total"]
        cell = page.locator("#amount-total")
        assert cell.evaluate("e => getComputedStyle(e).textAlign") in ("right", "end")
        page.click(f"button:has-text('{words['send']}')")

        url = link_in(
            mails_to("buyer@acme.example", folder=served.var_dir / "mail")[-1], "/portal/order/"
        )
        visit = customer.new_page()
        visit.goto(url)
        assert visit.locator("html").get_attribute("lang") == language
        assert plain(visit.inner_text("#amount-total")) == words["total"]
        phone = visit.viewport_size
        visit.set_viewport_size({"width": 390, "height": 844})
        # On a phone the page does not scroll sideways and the total stays in view.
        assert visit.evaluate("document.documentElement.scrollWidth") <= 390
        box = visit.locator("#amount-total").bounding_box()
        assert box is not None and box["x"] + box["width"] <= 390
        visit.set_viewport_size(phone)
        with visit.expect_download() as download:
            visit.click(f"a:has-text('{words['download']}')")
        text = pdf_text(Path(download.value.path()).read_bytes())
        for expected in words["pdf"] + words["pdf_more"]:
            assert expected in text, expected

        # The seller changes the quotation while the customer reads it.
        page.fill("#id_description", "Option")
        page.fill("#id_quantity", "1")
        page.fill("#id_unit_price", "10")
        page.select_option("#id_tax", label="TVA 20 %")
        page.click("#lines form[hx-post$='/lines/'] button[type=submit]")
        page.wait_for_selector("text=Option")
        visit.fill("#id_name", "Alice Martin")
        visit.click(f"button:has-text('{words['confirm']}')")
        assert words["changed"] in visit.inner_text("#portal-changed")
        assert "Option" in visit.inner_text("table.lines")  # the new version, to read again
        visit.fill("#id_name", "Alice Martin")
        visit.click(f"button:has-text('{words['confirm']}')")
        assert words["confirmed"] in visit.inner_text("#portal-answer")

        page.reload()
        assert words["state"] in page.inner_text("h1")
        assert words["accepted"] in page.inner_text("#customer-answer")
        revision = page.inner_text("#order-revision")  # the version on the customer's screen
        assert re.search(rf"\b{revision}\b", page.inner_text("#customer-answer"))
    finally:
        seller.close()
        customer.close()
