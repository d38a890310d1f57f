"""The quotation's PDF (WeasyPrint): what a customer files, and what it never does (fetch
a URL). Read back with pypdf."""

import http.server
import io
import threading
from decimal import Decimal

import pytest
from django.utils import translation
from pypdf import PdfReader

from oxygis.access.actors import acting_as, system
from oxygis.sales import services
from oxygis.sales.documents import current_document, html_to_pdf, render_quotation
from oxygis.sales.models import Company, Contact, Order, Tax
from oxygis.tenancy.databases import tenant_context


def text_of(pdf: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    text = "\n".join(page.extract_text() for page in reader.pages)
    # CLDR's French groups with a narrow no-break space and puts a no-break space before
    # the euro sign: read them, and line breaks, as plain spaces.
    return " ".join(text.replace("\u202f", " ").replace("\u00a0", " ").split())


class CountingServer:
    """A real HTTP server on loopback that counts every request it gets."""

    def __init__(self):
        hits = self.hits = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener():
    server = CountingServer()
    yield server
    server.close()


def test_making_a_pdf_fetches_no_url(listener):
    """S5/SSRF: a template that names an external image, stylesheet, font and import
    makes its PDF without a single request leaving (the control, with WeasyPrint's own
    fetcher, shows the same page would have fetched them)."""
    html = f"""<html><head>
      <link rel="stylesheet" href="{listener.url}/style.css">
      <style>@import url("{listener.url}/import.css");
        @font-face {{ font-family: x; src: url("{listener.url}/font.woff"); }}
        body {{ background: url("{listener.url}/background.png"); font-family: x; }}</style>
      </head><body><img src="{listener.url}/logo.png"><img src="file:///etc/passwd">
      <p>Hello</p></body></html>"""
    pdf = html_to_pdf(html)
    assert pdf.startswith(b"%PDF-") and "Hello" in text_of(pdf)
    assert listener.hits == []
    from weasyprint import HTML

    HTML(string=html).write_pdf()  # the default fetcher: it does go out
    assert len(listener.hits) >= 3


def test_a_quotation_with_urls_in_its_data_fetches_nothing(alpha, world, listener):
    """S5/SSRF: names, descriptions and the footer come from users; HTML or CSS in them
    is text in the PDF, never a request."""
    with tenant_context(world.tenant), acting_as(world.user("maria")):
        customer = Contact.objects.create(name=f'<img src="{listener.url}/name.png">')
    with tenant_context(world.tenant), acting_as(world.user("sam")):
        order = services.create_order(
            customer=customer,
            lines=[
                services.LineInput(
                    f'<link rel=stylesheet href="{listener.url}/x.css"> url({listener.url}/y)',
                    Decimal(1),
                    Decimal("10.00"),
                    Decimal(20),
                )
            ],
        )
        company = Company(legal_name="Acme", footer=f'<img src="{listener.url}/footer.png">')
        pdf = render_quotation(Order.objects.get(pk=order.pk), company, "en")
    assert listener.hits == []
    assert f"{listener.url}/footer.png" in text_of(pdf)  # shown as the text it is


def test_the_french_pdf_holds_what_a_customer_files(alpha, world):
    """The PDF of a French quotation: company block, legal mentions, customer with VAT
    number and delivery address, lines with discount, a tax row per rate, totals in
    French formats, validity, payment terms and page numbers."""
    with tenant_context(world.tenant), system(reason="test: company and taxes"):
        company = Company(
            legal_name="Mobilier Martin SAS",
            street="12 rue de la Paix",
            postcode="75002",
            city="Paris",
            siren="732829320",
            siret="73282932000074",
            vat_number="FR44732829320",
            legal_form="SAS au capital de 10 000 €",
            payment_terms="30 jours fin de mois",
            footer="Pénalités de retard : trois fois le taux d'intérêt légal.",
        )
        standard = Tax.objects.get(name="TVA 20 %")
        reduced = Tax.objects.get(name="TVA 5,5 %")
        customer = Contact.objects.create(
            name="Dupont SARL",
            vat_number="FR44732829320",
            street="1 place Bellecour",
            postcode="69002",
            city="Lyon",
            country="FR",
            delivery_street="3 quai Perrache",
            delivery_city="Lyon",
            language="fr",
        )
    with tenant_context(world.tenant), acting_as(world.user("sam")):
        order = services.create_order(customer=customer)
        services.save_line(
            order,
            services.LineInput(
                "Bureau réglable", Decimal(1), Decimal("2246.46"), discount=10, tax=standard
            ),
        )
        services.save_line(
            order, services.LineInput("Livraison", Decimal(1), Decimal("100.00"), tax=reduced)
        )
        order = Order.objects.get(pk=order.pk)
        text = text_of(render_quotation(order, company, "fr"))
    for expected in (
        f"Devis {order.number}",
        "Mobilier Martin SAS",
        "12 rue de la Paix",
        "SIREN 732829320",
        "SIRET 73282932000074",
        "N° de TVA intracommunautaire FR44732829320",
        "Dupont SARL",
        "Adresse de livraison",
        "3 quai Perrache",
        "Bureau réglable",
        "10 %",  # the discount
        "2 246,46 €",  # the unit price
        "TVA 20 % (20 % de 2 021,81 €)",  # 2 246,46 less 10 %
        "TVA 5,5 % (5,5 % de 100,00 €)",
        "Total HT",
        "2 121,81 €",
        "404,36 €",  # the tax of each rate
        "5,50 €",
        "Total TTC",
        "2 531,67 €",
        "Conditions de paiement",
        "30 jours fin de mois",
        "Ce devis est valable jusqu'au",
        "Pénalités de retard",
        "Page 1 / 1",
    ):
        assert expected in text, expected


def test_the_english_pdf_and_one_document_per_revision(alpha, world):
    """In English the same PDF reads "Quotation", "Total incl. tax", "€"; the document of
    a revision is made once: asked again, it is the same file (same digest)."""
    with tenant_context(world.tenant), acting_as(world.user("sam")):
        order = Order.objects.get(pk=world.orders["sam"][0])
        with translation.override("en"):
            first = current_document(order)
            again = current_document(order)
    assert first.pk == again.pk and first.sha256 == again.sha256
    text = text_of(bytes(first.pdf))
    assert f"Quotation {order.number}" in text and "Total incl. tax" in text
    assert "€" in text and "Page 1 / 1" in text
