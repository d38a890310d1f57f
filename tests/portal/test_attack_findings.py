"""Finding 10 of the attack run (issue 10): the portal's state machine. Every answer is
judged on the order as it is when the customer acts; a link dies with any cancel or
change of customer. Each test fails on the code before the fix."""

from urllib.parse import parse_qs, urlsplit

from oxygis.access.actors import acting_as, system
from oxygis.sales import services
from oxygis.sales.models import Contact, Order
from oxygis.tenancy.databases import tenant_context
from tests.portal.test_links import path_of, quotation, seen_on, send  # noqa: F401 - fixture
from tests.sales.test_views import client_for


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["t"][0]


def state_of(world, order) -> str:
    with tenant_context(world.tenant), system(reason="test: check"):
        return Order.objects.get(pk=order.pk).state


def test_finding_10_a_cancelled_order_set_back_to_quotation_does_not_revive_its_link(
    alpha,
    world,
    quotation,  # noqa: F811
):
    """S9 (finding 10): cancel, then back to quotation: the old link stays dead and the
    customer cannot confirm through it."""
    url, _ = send(alpha, quotation)
    sam = client_for(alpha, "sam")
    sam.post(f"/sales/orders/{quotation.pk}/cancel/", {"confirmed": "yes"})
    sam.post(f"/sales/orders/{quotation.pk}/draft/")
    assert state_of(world, quotation) == Order.DRAFT
    assert alpha.client().get(path_of(url)).status_code == 404
    posted = alpha.client().post(
        "/portal/order/", {"t": token_of(url), "action": "confirm", "name": "Late Buyer"}
    )
    assert posted.status_code == 404
    assert state_of(world, quotation) == Order.DRAFT


def test_finding_10_the_customer_cannot_decline_what_the_seller_confirmed(
    alpha,
    world,
    quotation,  # noqa: F811
):
    """S9 (finding 10): once the seller confirmed the order, the customer's link shows it
    read-only; a forged decline is refused (409, a clear page), the order stays
    confirmed; a forged confirm of a confirmed order is no 500 either."""
    url, _ = send(alpha, quotation)
    sam = client_for(alpha, "sam")
    sam.post(f"/sales/orders/{quotation.pk}/confirm/")
    page = alpha.client().get(path_of(url))
    assert page.status_code == 200 and "already confirmed" in page.content.decode()
    assert 'name="action" value="decline"' not in page.content.decode()
    for action in ("decline", "confirm"):
        refused = alpha.client().post(
            "/portal/order/", {"t": token_of(url), "action": action, "name": "Buyer"}
        )
        assert refused.status_code == 409, action
        assert "already confirmed" in refused.content.decode()
    assert state_of(world, quotation) == Order.CONFIRMED


def test_finding_10_an_order_without_lines_cannot_be_confirmed(
    alpha,
    world,
    quotation,  # noqa: F811
):
    """S9 (finding 10): lines removed after sending: confirming is refused cleanly."""
    url, _ = send(alpha, quotation)
    with tenant_context(world.tenant), acting_as(world.user("sam")):
        order = Order.objects.get(pk=quotation.pk)
        for line in list(order.lines.all()):
            services.delete_line(order, line)
    refused = alpha.client().post(
        "/portal/order/", {"t": token_of(url), "action": "confirm", "name": "Buyer"}
    )
    assert refused.status_code == 409 and "no lines" in refused.content.decode()
    assert state_of(world, quotation) == Order.SENT


def test_finding_10_a_link_dies_when_the_order_moves_to_another_customer(
    alpha,
    world,
    quotation,  # noqa: F811
):
    """S9 (finding 10): after the order is given to another customer, the first
    customer's link opens nothing."""
    url, _ = send(alpha, quotation)
    with tenant_context(world.tenant), acting_as(world.user("maria")):
        other = Contact.objects.create(name="Someone Else", email="else@x.example")
    with tenant_context(world.tenant), acting_as(world.user("sam")):
        services.update_order(Order.objects.get(pk=quotation.pk), customer=other)
    assert alpha.client().get(path_of(url)).status_code == 404
    posted = alpha.client().post(
        "/portal/order/", {"t": token_of(url), "action": "confirm", "name": "Old Customer"}
    )
    assert posted.status_code == 404
    assert state_of(world, quotation) == Order.SENT


def test_finding_10_the_seller_cancelling_between_open_and_answer_wins(
    alpha,
    world,
    quotation,  # noqa: F811
):
    """S9 (finding 10): the customer opened the page, then the seller cancelled: the
    confirmation posted from the open page is refused, the order stays cancelled."""
    url, _ = send(alpha, quotation)
    customer = alpha.client()
    assert customer.get(path_of(url)).status_code == 200
    with tenant_context(world.tenant), acting_as(world.user("sam")):
        services.cancel_order(Order.objects.get(pk=quotation.pk))
    late = customer.post(
        "/portal/order/", {"t": token_of(url), "action": "confirm", "name": "Too Late"}
    )
    assert late.status_code == 404
    assert state_of(world, quotation) == Order.CANCELLED


def test_finding_10_a_declined_order_still_shows_the_answer(
    alpha,
    world,
    quotation,  # noqa: F811
):
    """S9: declining makes the order "declined" (not the seller's "cancelled"), and that
    customer's link keeps showing their answer read-only (it is not revoked)."""
    url, _ = send(alpha, quotation)
    customer = alpha.client()
    signed = token_of(url)
    seen = seen_on(customer, signed)
    customer.post("/portal/order/", {"t": signed, "seen": seen, "action": "decline"})
    again = alpha.client().get(path_of(url))
    assert again.status_code == 200 and "Declined on" in again.content.decode()
    assert state_of(world, quotation) == Order.DECLINED
