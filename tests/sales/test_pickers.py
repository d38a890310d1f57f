"""Order pages stay the same size however many products and contacts a tenant has: the
product and customer choices are searchable pickers with bounded results (issue 13)."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model

from oxygis.access.actors import system
from oxygis.platform.provisioning import drop_tenant, provision_tenant
from oxygis.sales import services
from oxygis.sales.listing import PICK_LIMIT
from oxygis.sales.models import Contact, Order, Product
from oxygis.tenancy.databases import tenant_context
from tests.fixtures import HttpsClient, unique_slug
from tests.sales.test_views import client_for

HTMX = {"HX-Request": "true"}


@pytest.fixture(scope="module")
def big_catalogue():
    """A tenant with many products and customers, and its owner signed in."""
    made = provision_tenant(unique_slug("big"), name="Big catalogue", plan="paid")
    with tenant_context(made.tenant), system(reason="test: a big catalogue"):
        Product.objects.bulk_create(
            Product(name=f"Part {i:03d}", sku=f"P-{i:03d}", unit_price=Decimal("1.00") + i)
            for i in range(3 * PICK_LIMIT)
        )
        Product.objects.create(name="Retired part", sku="OLD-1", unit_price=1, active=False)
        Contact.objects.bulk_create(
            Contact(name=f"Client {i:03d}", email=f"client{i}@big.example", city="Liège")
            for i in range(3 * PICK_LIMIT)
        )
    client = HttpsClient(f"{made.tenant.slug}.localhost")
    client.sign_in(made.admin_username, made.admin_password)
    yield made.tenant, client
    drop_tenant(made.tenant)


def _offered(html: str, name: str) -> list[str]:
    return re.findall(rf'<input type="radio" name="{name}" value="(\d+)"', html)


def _product(tenant, sku: str) -> Product:
    with tenant_context(tenant), system(reason="test: look up a product"):
        return Product.objects.get(sku=sku)


def _new_order(tenant) -> Order:
    with tenant_context(tenant), system(reason="test: an order to add lines to"):
        return services.create_order(
            customer=Contact.objects.first(),
            salesperson=get_user_model().objects.get(username="admin"),
            lines=[],
        )


def test_the_order_page_offers_a_bounded_number_of_products(big_catalogue):
    """At three times PICK_LIMIT products, the order page offers PICK_LIMIT of them and
    says there are more; the whole catalogue is never on the page."""
    tenant, client = big_catalogue
    order = _new_order(tenant)
    page = client.get(f"/sales/orders/{order.pk}/").content.decode()
    assert len(_offered(page, "product")) == PICK_LIMIT
    assert "Only the first 20 matches are shown" in page
    assert "Part 059" not in page


def test_a_search_finds_any_product_with_or_without_javascript(big_catalogue):
    """Typing a SKU offers that product: as an htmx fragment of the choices only, and,
    without JavaScript, as the order page reloaded with the matches."""
    tenant, client = big_catalogue
    order = _new_order(tenant)
    wanted = _product(tenant, "P-059")
    fragment = client.get("/sales/products/pick/?product_q=p-059", headers=HTMX)
    assert fragment.status_code == 200
    body = fragment.content.decode()
    assert body.lstrip().startswith("<div") and "<html" not in body  # the choices only
    assert _offered(body, "product") == [str(wanted.pk)]
    page = client.get(f"/sales/orders/{order.pk}/?product_q=P-059").content.decode()
    assert _offered(page, "product") == [str(wanted.pk)]
    nothing = client.get("/sales/products/pick/?product_q=zzz", headers=HTMX).content.decode()
    assert _offered(nothing, "product") == [] and "Nothing matches" in nothing


def test_any_active_product_can_be_added_but_not_a_retired_one(big_catalogue):
    """The picker bounds what is shown, not what is accepted: a product beyond the first
    matches is added by its id; an inactive one is refused as before."""
    tenant, client = big_catalogue
    order = _new_order(tenant)
    far = _product(tenant, "P-050")
    added = client.post(
        f"/sales/orders/{order.pk}/lines/", {"product": far.pk, "quantity": "1"}, headers=HTMX
    )
    assert added.status_code == 200 and "Part 050" in added.content.decode()
    retired = _product(tenant, "OLD-1")
    refused = client.post(
        f"/sales/orders/{order.pk}/lines/", {"product": retired.pk, "quantity": "1"}, headers=HTMX
    )
    assert refused.status_code == 422
    with tenant_context(tenant), system(reason="test: count lines"):
        assert list(Order.objects.get(pk=order.pk).lines.values_list("product", flat=True)) == [
            far.pk
        ]


def test_a_refused_line_keeps_its_chosen_product_on_offer(big_catalogue):
    """When a line is refused (here a negative quantity), the product chosen is still
    offered, checked, though it is not among the first matches."""
    tenant, client = big_catalogue
    order = _new_order(tenant)
    far = _product(tenant, "P-055")
    refused = client.post(
        f"/sales/orders/{order.pk}/lines/", {"product": far.pk, "quantity": "-1"}, headers=HTMX
    )
    assert refused.status_code == 422
    html = refused.content.decode()
    assert str(far.pk) in _offered(html, "product")
    assert re.search(rf'value="{far.pk}"[^>]*checked', html)


def test_the_new_quotation_page_offers_a_bounded_number_of_customers(big_catalogue):
    """The customer of a new quotation is picked the same way: bounded, searchable, and
    any visible customer accepted."""
    tenant, client = big_catalogue
    page = client.get("/sales/orders/new/").content.decode()
    assert len(_offered(page, "customer")) == PICK_LIMIT
    found = client.get("/sales/contacts/pick/?customer_q=Client%20059", headers=HTMX)
    with tenant_context(tenant), system(reason="test: look up a contact"):
        wanted = Contact.objects.get(name="Client 059")
        admin_pk = Order.objects.first().salesperson_id
    assert _offered(found.content.decode(), "customer") == [str(wanted.pk)]
    made = client.post(
        "/sales/orders/new/",
        {"customer": wanted.pk, "salesperson": admin_pk, "currency": "EUR"},
    )
    assert made.status_code == 302
    with tenant_context(tenant), system(reason="test: the order made"):
        assert Order.objects.order_by("-pk").first().customer_id == wanted.pk


def test_pickers_offer_only_what_the_user_may_see(alpha, world):
    """S6: a user with no sales role is offered no product and no customer, and an
    anonymous visitor is sent to sign in."""
    nora = client_for(alpha, "nora")
    for path, name in (
        ("/sales/products/pick/?product_q=widget", "product"),
        ("/sales/contacts/pick/?customer_q=customer", "customer"),
    ):
        html = nora.get(path, headers=HTMX).content.decode()
        assert _offered(html, name) == []
        anonymous = alpha.client().get(path)
        assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
    sam = client_for(alpha, "sam")
    offered = _offered(
        sam.get("/sales/products/pick/?product_q=widget").content.decode(), "product"
    )
    assert set(offered) == {str(p.pk) for p in world.products}
