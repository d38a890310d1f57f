"""Findings 8 and 9 of the attack run (issue 10): stored denial of service by amounts,
and line breaks in names. Each fails on the code before the fix."""

from decimal import Decimal

import pytest

from oxygis.access.actors import acting_as, system
from oxygis.sales import services
from oxygis.sales.models import Contact, Order
from oxygis.tenancy.databases import tenant_context
from tests.sales.test_api import call, key_for  # noqa: F401 - key_for is a fixture
from tests.sales.test_views import client_for, standard_tax

HUGE_QUANTITY, HUGE_PRICE = "999999999.999", "9999999999.99"


def pages_still_work(alpha, world, token):
    maria = client_for(alpha, "maria")
    assert maria.get("/sales/orders/").status_code == 200
    assert call(alpha, "get", "/orders?limit=200", token=token)[0] == 200
    for order_id in world.orders["maria"]:
        assert maria.get(f"/sales/orders/{order_id}/").status_code == 200


def test_finding_8_amounts_beyond_storage_are_refused_before_writing(alpha, world, key_for):  # noqa: F811
    """S6/integrity (finding 8): a line or an order whose amounts would exceed what the
    columns hold is refused (API 400, form 422) and nothing is written, so the order,
    the order list and the API list keep answering for everyone."""
    token = key_for("maria")
    customer = world.contacts[0].pk
    huge_line = {"description": "Galaxy", "quantity": HUGE_QUANTITY, "unit_price": HUGE_PRICE}
    status, body = call(
        alpha, "post", "/orders", token=token, body={"customer_id": customer, "lines": [huge_line]}
    )
    assert status == 400 and "larger than the largest amount" in str(body["detail"])

    # Lines that each fit but together exceed the order total's column.
    order_id = world.orders["maria"][0]
    fits = {"description": "Big", "quantity": "100000000", "unit_price": "6000.00", "tax_rate": 0}
    first = call(alpha, "post", f"/orders/{order_id}/lines", token=token, body=fits)
    assert first[0] == 201
    second = call(alpha, "post", f"/orders/{order_id}/lines", token=token, body=fits)
    assert second[0] == 400 and "untaxed amount" in str(second[1]["detail"])

    maria = client_for(alpha, "maria")
    form = maria.post(
        f"/sales/orders/{order_id}/lines/",
        {
            "description": "Galaxy",
            "quantity": HUGE_QUANTITY,
            "unit_price": HUGE_PRICE,
            "tax": standard_tax(world).pk,
        },
        headers={"HX-Request": "true"},
    )
    assert form.status_code == 422 and "larger than the largest amount" in form.content.decode()
    with tenant_context(world.tenant), system(reason="test: check totals"):
        order = Order.objects.get(pk=order_id)
        assert order.amount_total < Decimal("1e12")
        order.lines.filter(description="Big").delete()
        order.compute_totals()
        order.save()
    pages_still_work(alpha, world, token)


@pytest.mark.parametrize("rate", ["100.01", "150", "-1"])
def test_finding_8_tax_rates_stay_between_0_and_100(alpha, world, key_for, rate):  # noqa: F811
    """S6/integrity (finding 8): a tax rate is a percentage, 0 to 100, in the API; the
    forms pick a tax from the table, and their discount is a percentage, 0 to 100."""
    token = key_for("maria")
    line = {"description": "X", "quantity": "1", "unit_price": "1.00", "tax_rate": rate}
    order_id = world.orders["maria"][0]
    assert call(alpha, "post", f"/orders/{order_id}/lines", token=token, body=line)[0] == 422
    product = {"name": "Taxed", "sku": f"TX-{rate}", "unit_price": "1.00", "tax_rate": rate}
    assert call(alpha, "post", "/products", token=token, body=product)[0] == 422
    maria = client_for(alpha, "maria")
    form = maria.post(
        f"/sales/orders/{order_id}/lines/",
        {"description": "X", "quantity": "1", "unit_price": "1", "discount": rate},
        headers={"HX-Request": "true"},
    )
    assert form.status_code == 422
    assert (
        call(
            alpha,
            "post",
            f"/orders/{order_id}/lines",
            token=token,
            body={**line, "tax_rate": "20", "discount": rate},
        )[0]
        == 422
    )


def test_finding_9_line_breaks_are_refused_in_single_line_fields(alpha, world, key_for):  # noqa: F811
    """S3/headers (finding 9): names with CR/LF or other control characters are refused
    by the forms and the API, with a clear message."""
    token = key_for("maria")
    status, body = call(
        alpha, "post", "/contacts", token=token, body={"name": "Evil\r\nBcc: x@evil.example"}
    )
    assert status == 400 and "single line" in str(body["detail"])
    maria = client_for(alpha, "maria")
    page = maria.post("/sales/contacts/new/", {"kind": "company", "name": "Evil\nCorp"})
    assert page.status_code == 422 and "single line" in page.content.decode()
    patch = call(
        alpha,
        "patch",
        f"/contacts/{world.contacts[0].pk}",
        token=token,
        body={"city": "Lille\u2028Bcc"},
    )
    assert patch[0] == 400


def test_finding_9_a_stored_name_with_a_line_break_cannot_break_the_mail(alpha, world):
    """S3/headers (finding 9): a name stored before the rule (written around the forms)
    still gives a one-line e-mail subject: the customer's confirmation goes through."""
    from urllib.parse import parse_qs, urlsplit

    from tests.fixtures import link_in, mails_to

    with tenant_context(world.tenant), system(reason="test: a row from before the rule"):
        customer = Contact.objects.create(
            name="Old\r\nBcc: victim@evil.example", email="old-row@x.example"
        )
    with tenant_context(world.tenant), acting_as(world.user("sam")):
        order = services.create_order(
            customer=customer,
            lines=[services.LineInput("Desk", Decimal(1), Decimal("10.00"), Decimal("21"))],
        )
    sam = client_for(alpha, "sam")
    assert sam.post(f"/sales/orders/{order.pk}/email/").status_code == 302
    signed = parse_qs(urlsplit(link_in(mails_to("old-row@x.example")[-1], "/portal/")).query)
    from tests.portal.test_links import seen_on

    buyer = alpha.client()
    seen = seen_on(buyer, signed["t"][0])
    done = buyer.post(
        "/portal/order/",
        {"t": signed["t"][0], "seen": seen, "action": "confirm", "name": "Old Buyer"},
    )
    assert done.status_code == 200 and "Confirmed by Old Buyer" in done.content.decode()
    told = mails_to("sam@alpha.example")[-1]
    assert "\n" not in str(told["Subject"]) and "Bcc" not in told
    assert str(told["Subject"]).endswith("Old Bcc: victim@evil.example")
