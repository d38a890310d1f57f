"""The company details page (administrators): French registration and VAT numbers with
their check digits, the logo (S5: an image, re-encoded, size-limited, served from the
tenant's own database), and the tax table."""

import io
import re
import struct
import zlib
from decimal import Decimal

from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image
from pypdf import PdfReader

from oxygis.access.actors import acting_as, system
from oxygis.audit.models import AuditEvent
from oxygis.sales import services
from oxygis.sales.company import LOGO_MAX_BYTES
from oxygis.sales.documents import render_quotation
from oxygis.sales.models import Company, Order, Product, Tax
from oxygis.tenancy.databases import tenant_context
from tests.sales.test_views import client_for

VALID = {
    "legal_name": "Mobilier Martin SAS",
    "legal_form": "SAS au capital de 10 000 €",
    "street": "12 rue de la Paix",
    "postcode": "75002",
    "city": "Paris",
    "country": "FR",
    "siren": "732 829 320",
    "siret": "732 829 320 00074",
    "vat_number": "FR 44 732829320",
    "quotation_validity_days": "45",
    "payment_terms": "30 jours fin de mois",
    "footer": "Pénalités de retard : 3 fois le taux légal.",
    "language": "",
    "time_zone": "Europe/Paris",
}


def png(width=40, height=20, **info) -> bytes:
    image = Image.new("RGB", (width, height), (200, 30, 30))
    out = io.BytesIO()
    image.save(out, format="PNG", **info)
    return out.getvalue()


def bomb_png(width=60000, height=60000) -> bytes:
    """A tiny PNG whose header claims billions of pixels (a decompression bomb)."""

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def post_company(client, logo=None, **changes):
    data = {**VALID, **changes}
    if logo is not None:
        data["logo_upload"] = logo
    return client.post("/settings/company/", data)


def reset_company(world):
    with tenant_context(world.tenant):
        Company.objects.filter(pk=1).delete()


def test_the_administrator_fills_in_the_company_details(alpha, world):
    """Numbers are checked with their check digits and stored in their standard form;
    every change is audited."""
    admin = client_for(alpha, "admin")
    try:
        bad = post_company(admin, siren="732829321", vat_number="FR00123456789")
        html = bad.content.decode()
        assert bad.status_code == 200
        assert "not a valid SIREN" in html and "not a valid EU VAT number" in html
        mismatch = post_company(admin, siret="55210055400013")
        assert "The SIRET must start with the SIREN." in mismatch.content.decode()
        assert post_company(admin, language="fr").status_code == 302
        with tenant_context(world.tenant):
            company = Company.current()
            assert (company.siren, company.siret, company.vat_number) == (
                "732829320",
                "73282932000074",
                "FR44732829320",
            )
            assert company.quotation_validity_days == 45
            assert AuditEvent.objects.filter(action="company.changed").exists()
        # The workspace now speaks French to those who chose nothing.
        page = admin.get("/settings/company/").content.decode()
        assert '<html lang="fr">' in page and "Coordonnées de l'entreprise" in page
    finally:
        reset_company(world)


def test_a_new_quotation_is_valid_for_the_companys_days(alpha, world):
    with tenant_context(world.tenant), system(reason="test: company"):
        Company.objects.update_or_create(pk=1, defaults={"quotation_validity_days": 45})
    try:
        with tenant_context(world.tenant), acting_as(world.user("sam")):
            order = services.create_order(customer=world.contacts[0])
        assert (order.valid_until - order.created_at.date()).days in (44, 45, 46)
    finally:
        reset_company(world)


def test_only_administrators_reach_the_company_page_and_its_logo(alpha, world):
    """S6: salespeople, managers and the read-only role get 403 on the page and the logo."""
    for name in ("sam", "maria", "rita"):
        client = client_for(alpha, name)
        assert client.get("/settings/company/").status_code == 403, name
        assert client.get("/settings/company/logo.png").status_code == 403, name
        assert client.post("/settings/company/", VALID).status_code == 403, name
    assert client_for(alpha, "admin").get("/settings/company/logo.png").status_code == 404


def test_the_logo_is_an_image_re_encoded_and_bounded(alpha, world):
    """S5: only real images are kept, re-encoded as PNG (no metadata carried over) and
    scaled to fit; a non-image, a decompression bomb and an oversized file are refused
    with a clear message and change nothing."""
    admin = client_for(alpha, "admin")
    try:
        with_metadata = png(1200, 600, pnginfo=_text_chunk("Author", "secret-name"))
        upload = SimpleUploadedFile("../../etc/logo.png", with_metadata, "image/png")
        assert post_company(admin, logo=upload).status_code == 302
        served = admin.get("/settings/company/logo.png")
        assert served.status_code == 200 and served["Content-Type"] == "image/png"
        assert b"secret-name" not in served.content and served.content != with_metadata
        with Image.open(io.BytesIO(served.content)) as image:
            assert image.format == "PNG" and image.size[0] <= 600 and image.size[1] <= 240
        refused = {
            "script.png": (b"<script>alert(1)</script>", "not an image that can be read"),
            "bomb.png": (bomb_png(), "too many pixels"),  # refused by Pillow's header check
            "wide.png": (bomb_png(5000, 5000), "too many pixels"),  # by our smaller limit
            "big.png": (b"\x89PNG" + b"0" * (LOGO_MAX_BYTES + 1), "larger than 512 KB"),
        }
        for name, (content, message) in refused.items():
            response = post_company(admin, logo=SimpleUploadedFile(name, content, "image/png"))
            assert response.status_code == 200 and message in response.content.decode(), name
        assert admin.get("/settings/company/logo.png").content == served.content  # kept
        # The logo reaches the PDF (embedded, not fetched).
        with tenant_context(world.tenant), acting_as(world.user("sam")):
            order = Order.objects.get(pk=world.orders["sam"][0])
            pdf = render_quotation(order, Company.current(), "en")
        page = PdfReader(io.BytesIO(pdf)).pages[0]
        assert len(page.images) == 1
        assert post_company(admin, remove_logo="on").status_code == 302
        assert admin.get("/settings/company/logo.png").status_code == 404
    finally:
        reset_company(world)


def _text_chunk(key, value):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(key, value)
    return info


def test_the_tax_table_is_the_administrators_and_products_pick_from_it(alpha, world):
    """A new rate (included in prices) added by the administrator: products pick it, and
    a line with it keeps the price; others cannot add taxes."""
    admin = client_for(alpha, "admin")
    made = admin.post(
        "/settings/company/taxes/new/",
        {"name": "TVA 8,5 % DOM", "rate": "8.5", "included": "on", "active": "on"},
    )
    assert made.status_code == 302
    assert client_for(alpha, "maria").get("/settings/company/taxes/new/").status_code == 403
    with tenant_context(world.tenant), system(reason="test: the new tax"):
        dom = Tax.objects.get(name="TVA 8,5 % DOM")
    assert dom.included and dom.rate == Decimal("8.50")
    assert "TVA 8,5 % DOM" in admin.get("/settings/company/").content.decode()
    assert admin.get(f"/settings/company/taxes/{dom.pk}/").status_code == 200
    maria = client_for(alpha, "maria")
    form = maria.get("/sales/products/new/").content.decode()
    assert re.search(rf'<option value="{dom.pk}">TVA 8,5 % DOM</option>', form)
    saved = maria.post(
        "/sales/products/new/",
        {"name": "Rhum", "sku": "RHUM-1", "unit_price": "21.70", "tax": dom.pk, "active": "on"},
    )
    assert saved.status_code == 302
    with tenant_context(world.tenant), system(reason="test: the product"):
        rum = Product.objects.get(sku="RHUM-1")
    assert rum.tax_id == dom.pk and rum.tax_rate == Decimal("8.50")
    with tenant_context(world.tenant), acting_as(world.user("sam")):
        order = services.create_order(customer=world.contacts[0])
        line = services.save_line(
            order, services.LineInput("", Decimal(1), Decimal("21.70"), product=rum)
        )
    assert (line.total, line.subtotal, line.tax_included) == (
        Decimal("21.70"),
        Decimal("20.00"),
        True,
    )
