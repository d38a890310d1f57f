"""S9: the customer accepts the revision they saw, and nothing else. The acceptance
keeps the revision, its totals and the SHA-256 of the PDF shown, and the seller can
download that very file."""

import hashlib
import re
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

from django.core import signing

from oxygis.access.actors import acting_as, system
from oxygis.audit.models import AuditEvent
from oxygis.portal.models import OrderLink
from oxygis.sales import services
from oxygis.sales.models import Order, QuotationDocument
from oxygis.tenancy.databases import tenant_context
from tests.fixtures import mails_to
from tests.portal.test_links import path_of, quotation, seen_on, send  # noqa: F401 - fixture
from tests.sales.test_views import client_for


def signed_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["t"][0]


def add_line(world, order, description="Late extra", price="50.00"):
    with tenant_context(world.tenant), acting_as(world.user("sam")):
        services.save_line(
            Order.objects.get(pk=order.pk),
            services.LineInput(description, Decimal(1), Decimal(price), Decimal(20)),
        )


def stored(world, order):
    with tenant_context(world.tenant), system(reason="test: check"):
        return (
            Order.objects.get(pk=order.pk),
            OrderLink.objects.filter(order_id=order.pk).order_by("-created_at").first(),
        )


def test_an_answer_to_an_older_revision_is_refused_and_nothing_is_recorded(
    alpha,
    world,
    quotation,  # noqa: F811
):
    """S9: the customer opened revision N; the seller changed the quotation; the
    customer's "confirm" is refused with the new version shown, nothing is recorded.
    Confirming the new version records its revision, totals and document digest."""
    url, _ = send(alpha, quotation)
    signed = signed_of(url)
    customer = alpha.client(REMOTE_ADDR="198.51.100.7")
    old_seen = seen_on(customer, signed)
    before, _link = stored(world, quotation)
    add_line(world, quotation)
    stale = customer.post(
        "/portal/order/", {"t": signed, "seen": old_seen, "action": "confirm", "name": "Jo"}
    )
    html = stale.content.decode()
    after, link = stored(world, quotation)
    assert stale.status_code == 409 and 'id="portal-changed"' in html
    assert f'id="portal-revision">{after.revision}<' in html and after.revision > before.revision
    assert "Late extra" in html  # the new version is what the page shows now
    assert after.state == Order.SENT and link.response == "" and link.answer_revision is None
    with tenant_context(world.tenant):
        assert not AuditEvent.objects.filter(
            action="portal.confirmed", target=quotation.number
        ).exists()
    new_seen = re.search(r'name="seen" value="([^"]+)"', html)[1]
    done = customer.post(
        "/portal/order/", {"t": signed, "seen": new_seen, "action": "confirm", "name": "Jo"}
    )
    assert done.status_code == 200 and "Confirmed by Jo" in done.content.decode()
    final, link = stored(world, quotation)
    with tenant_context(world.tenant):
        document = QuotationDocument.objects.get(order_id=quotation.pk, revision=final.revision)
    assert final.state == Order.CONFIRMED
    assert link.answer_revision == final.revision == after.revision
    assert link.answer_digest == document.sha256
    assert (link.answer_untaxed, link.answer_tax, link.answer_total) == (
        final.amount_untaxed,
        final.amount_tax,
        final.amount_total,
    )
    # The seller downloads exactly the file that was accepted, and sees the record.
    sam = client_for(alpha, "sam")
    pdf = sam.get(f"/sales/orders/{quotation.pk}/pdf/?revision={link.answer_revision}")
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert hashlib.sha256(pdf.content).hexdigest() == link.answer_digest
    page = sam.get(f"/sales/orders/{quotation.pk}/").content.decode()
    assert "Accepted by Jo" in page and link.answer_digest in page and "198.51.100.7" in page
    assert sam.get(f"/sales/orders/{quotation.pk}/pdf/?revision=999").status_code == 404
    assert sam.get(f"/sales/orders/{quotation.pk}/pdf/?revision=x1").status_code == 404


def test_a_forged_or_foreign_seen_field_records_nothing(
    alpha,
    world,
    quotation,  # noqa: F811
):
    """S9: the revision and digest travel signed in the form; a customer who edits them
    (to accept a revision they did not see), or replays another link's, gets the page
    again (409) and nothing is recorded."""
    url, _ = send(alpha, quotation)
    signed = signed_of(url)
    customer = alpha.client()
    seen = seen_on(customer, signed)
    forged_values = [
        seen[:-3] + ("AAA" if not seen.endswith("AAA") else "BBB"),  # bad signature
        signing.dumps({"link": 0, "revision": 1, "digest": "0" * 64}),  # wrong salt
        "",
    ]
    for forged in forged_values:
        response = customer.post(
            "/portal/order/", {"t": signed, "seen": forged, "action": "confirm", "name": "X"}
        )
        assert response.status_code == 409, forged
        assert "out of date" in response.content.decode()
    order, link = stored(world, quotation)
    assert order.state == Order.SENT and link.response == ""


def test_the_seller_is_told_a_sent_quotation_changed_and_can_send_it_again(
    alpha,
    world,
    quotation,  # noqa: F811
):
    """S9: editing a sent quotation warns the seller that the customer's link shows the
    new version; "send the new version again" e-mails it with its own PDF."""
    send(alpha, quotation)
    sam = client_for(alpha, "sam")
    page = sam.get(f"/sales/orders/{quotation.pk}/").content.decode()
    assert 'id="sent-warning"' in page and "Send the new version again" not in page
    add_line(world, quotation, "Changed after sending")
    page = sam.get(f"/sales/orders/{quotation.pk}/").content.decode()
    assert "It has changed since it was sent" in page and "Send the new version again" in page
    count = len(mails_to(quotation.customer.email))
    assert sam.post(f"/sales/orders/{quotation.pk}/email/").status_code == 302
    mail = mails_to(quotation.customer.email)[-1]
    assert len(mails_to(quotation.customer.email)) == count + 1
    order, link = stored(world, quotation)
    assert link.revision_sent == order.revision
    attached = [part for part in mail.iter_attachments()]
    assert [part.get_content_type() for part in attached] == ["application/pdf"]
    assert attached[0].get_filename() == f"{order.number}-r{order.revision}.pdf"
    with tenant_context(world.tenant):
        document = QuotationDocument.objects.get(order_id=order.pk, revision=order.revision)
    assert hashlib.sha256(attached[0].get_content()).hexdigest() == document.sha256
    page = sam.get(f"/sales/orders/{quotation.pk}/").content.decode()
    assert "It has changed since it was sent" not in page


def test_the_pdf_behind_the_link_follows_the_links_rules(
    alpha,
    world,
    quotation,  # noqa: F811
):
    """S9: the customer's PDF is reached with the same token as the page, under the same
    rules: a made-up or revoked link gets the same 404 as any unknown page."""
    url, mail = send(alpha, quotation)
    signed = signed_of(url)
    customer = alpha.client()
    pdf = customer.get("/portal/order/pdf/", {"t": signed})
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    assert pdf["Referrer-Policy"] == "no-referrer" and "no-store" in pdf["Cache-Control"]
    attached = next(mail.iter_attachments()).get_content()
    assert pdf.content == attached  # one document per revision, the very same bytes
    assert customer.get("/portal/order/pdf/", {"t": signed + "x"}).status_code == 404
    sam = client_for(alpha, "sam")
    sam.post(f"/sales/orders/{quotation.pk}/revoke-links/", {"confirmed": "yes"})
    assert customer.get("/portal/order/pdf/", {"t": signed}).status_code == 404
    assert customer.get(path_of(url)).status_code == 404
    other = client_for(alpha, "sue")  # another salesperson: not her order
    assert other.get(f"/sales/orders/{quotation.pk}/pdf/").status_code == 404
