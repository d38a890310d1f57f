"""S6/S13 in the web UI: each page tried as each persona. A row the user may not see
answers 404 exactly like a row that does not exist (no existence leak)."""

import re

import pytest

from oxygis.access.actors import system
from oxygis.sales.models import Order
from oxygis.tenancy.databases import tenant_context
from tests.fixtures import MEMBER_PASSWORD, without_tokens

LISTS = ["/sales/orders/", "/sales/contacts/", "/sales/products/"]


def client_for(alpha, name):
    client = alpha.client()
    if name is not None:
        client.sign_in(name, alpha.owner_password if name == "admin" else MEMBER_PASSWORD)
    return client


def numbers(world, *names):
    with tenant_context(world.tenant), system(reason="test: order numbers"):
        return {o.number for o in Order.objects.filter(salesperson__username__in=names)}


@pytest.mark.parametrize("path", LISTS)
def test_lists_need_sign_in(alpha, world, path):
    """S6: anonymous visitors are sent to sign in."""
    assert client_for(alpha, None).get(path)["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize(
    ("name", "sees"),
    [
        ("sam", ["sam"]),
        ("maria", ["sam", "sue", "maria"]),
        ("rita", ["sam", "sue", "maria"]),
        ("nora", []),
    ],
)
def test_order_list_shows_what_the_role_allows(alpha, world, name, sees):
    """S6/S13: the order list of each persona holds exactly their visible orders (read
    across its pages: other tests add orders)."""
    client, shown = client_for(alpha, name), set()
    for page in range(1, 100):
        html = client.get(f"/sales/orders/?sort=number&page={page}").content.decode()
        shown |= set(re.findall(r">(SO\d{5})<", html))
        if f'&amp;page={page + 1}">' not in html:
            break
    assert numbers(world, "sam", "sue", "maria") >= shown
    assert numbers(world, *sees) <= shown if sees else shown == set()
    hidden = numbers(world, "sam", "sue", "maria") - numbers(world, *sees)
    assert not shown & hidden


def test_invisible_order_is_a_404_like_a_missing_one(alpha, world):
    """S6: sue's order id, tried by sam on every order URL, answers exactly like an id
    that does not exist."""
    sam = client_for(alpha, "sam")
    theirs, missing = world.orders["sue"][0], 999999
    for method, template in (
        ("get", "/sales/orders/{}/"),
        ("post", "/sales/orders/{}/confirm/"),
        ("post", "/sales/orders/{}/lines/"),
        ("post", "/sales/orders/{}/lines/1/delete/"),
    ):
        a = getattr(sam, method)(template.format(theirs))
        b = getattr(sam, method)(template.format(missing))
        assert a.status_code == b.status_code == 404, template
        assert without_tokens(a) == without_tokens(b)


def test_salesperson_edits_own_order_with_live_totals(alpha, world):
    """S13: sam adds a line to his order; the htmx answer is the lines with new totals."""
    sam = client_for(alpha, "sam")
    order_id = world.orders["sam"][1]
    page = sam.get(f"/sales/orders/{order_id}/")
    assert page.status_code == 200 and 'hx-post="/sales/orders/' in page.content.decode()
    partial = sam.post(
        f"/sales/orders/{order_id}/lines/",
        {
            "description": "Service",
            "quantity": "1.5",
            "unit_price": "10.01",
            "tax": standard_tax(world).pk,
        },
        headers={"HX-Request": "true"},
    )
    html = partial.content.decode()
    assert partial.status_code == 200 and "<html" not in html  # a fragment
    assert "15.02" in html  # 1.5 x 10.01 = 15.015 -> 15.02
    bad = sam.post(
        f"/sales/orders/{order_id}/lines/", {"quantity": "-1"}, headers={"HX-Request": "true"}
    )
    assert bad.status_code == 422 and "errorlist" in bad.content.decode()
    with tenant_context(world.tenant), system(reason="test: find the line"):
        line = Order.objects.get(pk=order_id).lines.get(description="Service")
    url = f"/sales/orders/{order_id}/lines/{line.pk}/delete/"
    asked = sam.post(url)  # without JavaScript: a page asks first, nothing is removed
    assert asked.status_code == 200 and 'name="confirmed" value="yes"' in asked.content.decode()
    assert "Service" in sam.get(f"/sales/orders/{order_id}/").content.decode()
    removed = sam.post(url, {"confirmed": "yes"}, headers={"HX-Request": "true"})
    assert removed.status_code == 200 and "Service" not in removed.content.decode()


def test_read_only_and_salesperson_limits_in_the_ui(alpha, world):
    """S13: read-only writes nothing (403); a salesperson cannot edit contacts (403);
    a manager can change anyone's order."""
    rita = client_for(alpha, "rita")
    response = rita.post(
        f"/sales/orders/{world.orders['sam'][0]}/lines/",
        {"description": "x", "quantity": "1", "unit_price": "1", "tax": standard_tax(world).pk},
    )
    assert response.status_code == 403
    sam = client_for(alpha, "sam")
    contact = world.contacts[2]
    assert (
        sam.post(
            f"/sales/contacts/{contact.pk}/", {"kind": "company", "name": "Renamed"}
        ).status_code
        == 403
    )
    maria = client_for(alpha, "maria")
    sue_order = world.orders["sue"][1]
    assert maria.post(f"/sales/orders/{sue_order}/send/").status_code == 302
    assert maria.post(f"/sales/orders/{sue_order}/draft/").status_code == 302


def test_new_quotation_and_transitions(alpha, world):
    """A salesperson creates a quotation for themself, adds a line, confirms it."""
    sam = client_for(alpha, "sam")
    form = sam.get("/sales/orders/new/").content.decode()
    sellers = re.search(r'<select name="salesperson".*?</select>', form, re.S)[0]
    assert f'value="{world.user("sue").pk}"' not in sellers  # cannot pick another seller
    assert f'value="{world.user("sam").pk}"' in sellers
    made = sam.post(
        "/sales/orders/new/",
        {"customer": world.contacts[0].pk, "salesperson": world.user("sam").pk, "currency": "eur"},
    )
    assert made.status_code == 302
    order_url = made["Location"]
    sam.post(order_url + "lines/", {"product": world.products[0].pk, "quantity": "2"})
    assert sam.post(order_url + "confirm/").status_code == 302
    page = sam.get(order_url).content.decode()
    assert "Confirmed" in page and "€" in page  # amounts in the locale's format
    assert sam.post(order_url + "explode/").status_code == 404  # unknown action: nothing


def test_search_sort_paginate_and_escape(alpha, world):
    """Lists search, sort (only on known keys) and paginate; names are escaped (S3)."""
    maria = client_for(alpha, "maria")
    html = maria.get("/sales/contacts/?q=Customer 1&sort=-city").content.decode()
    assert "Customer 1 &lt;b&gt;&amp;&lt;/b&gt;" in html and "Customer 2" not in html
    assert "<b>&</b>" not in html
    assert maria.get("/sales/orders/?sort=password&page=99").status_code == 200
    assert maria.get("/sales/orders/?state=confirmed").status_code == 200
    assert maria.get("/sales/products/?sort=-price").status_code == 200


def standard_tax(world):
    from oxygis.sales.models import Tax

    with tenant_context(world.tenant), system(reason="test: the tax table"):
        return Tax.objects.get(name="TVA 20 %")


def test_managers_create_and_edit_contacts_and_products(alpha, world):
    maria = client_for(alpha, "maria")
    assert maria.get("/sales/contacts/new/").status_code == 200
    assert (
        maria.post(
            "/sales/contacts/new/", {"kind": "person", "name": "Zed", "country": "BE"}
        ).status_code
        == 302
    )
    assert (
        maria.post(
            "/sales/products/new/",
            {
                "name": "Gadget",
                "sku": "G-1",
                "unit_price": "5.00",
                "tax": standard_tax(world).pk,
                "active": "on",
            },
        ).status_code
        == 302
    )
    dupe = maria.post(
        "/sales/products/new/",
        {"name": "Gadget", "sku": "G-1", "unit_price": "5.00", "tax": standard_tax(world).pk},
    )
    assert "already exists" in dupe.content.decode()
    product = world.products[0]
    assert maria.get(f"/sales/products/{product.pk}/").status_code == 200


def test_order_forms_need_the_csrf_token(alpha, world):
    """S4: without the token, a state-changing POST is refused."""
    signed_in = client_for(alpha, "sam")
    client = alpha.client(enforce_csrf_checks=True)
    client.cookies = signed_in.cookies
    assert client.get("/sales/orders/").status_code == 200  # signed in
    response = client.post(
        f"/sales/orders/{world.orders['sam'][0]}/confirm/",
        headers={"Origin": f"https://{alpha.host}"},
    )
    assert response.status_code == 403


def test_a_line_takes_the_products_own_tax_rate(alpha, world):
    """A line with no tax chosen takes the product's tax and rate, not a default."""
    from decimal import Decimal

    from oxygis.access.actors import acting_as
    from oxygis.sales.models import Product

    with tenant_context(world.tenant), acting_as(world.user("maria")):
        book = Product.objects.create(
            name="Book", sku="BOOK-6", unit_price=Decimal("20.00"), tax_rate=Decimal("6.00")
        )
    sam = client_for(alpha, "sam")
    order_id = world.orders["sam"][0]
    assert (
        '<option value="" selected>The product&#x27;s own tax</option>'
        in sam.get(f"/sales/orders/{order_id}/").content.decode()
    )  # the default choice
    sam.post(f"/sales/orders/{order_id}/lines/", {"product": book.pk, "quantity": "1"})
    # A line without a product must name its tax: a forgotten one would bill 0 %.
    free = sam.post(
        f"/sales/orders/{order_id}/lines/",
        {"description": "Consulting", "quantity": "1", "unit_price": "100"},
        headers={"HX-Request": "true"},
    )
    assert free.status_code == 422
    assert "Choose the tax of a line without a product." in free.content.decode()
    with tenant_context(world.tenant), system(reason="test: read the line"):
        line = Order.objects.get(pk=order_id).lines.get(product=book)
    assert line.tax_rate == Decimal("6.00") and line.unit_price == Decimal("20.00")
