"""The sales pages guide instead of failing (issue 15): errors where they happen, with
what was typed; lines edited in place, sections and notes; duplicates; an order's
history; and, for each role, no form or button that the access layer would refuse."""

import csv
import io
import re
from decimal import Decimal
from html.parser import HTMLParser

import pytest

from oxygis.access.actors import acting_as, system
from oxygis.sales import services
from oxygis.sales.models import Order, OrderEvent, OrderLine
from oxygis.tenancy.databases import tenant_context
from tests.sales.test_api import call, key_for  # noqa: F401 - key_for is a fixture
from tests.sales.test_views import client_for, standard_tax

HTMX = {"HX-Request": "true"}


def new_order(world, owner="sam", lines=1, customer=0) -> int:
    with tenant_context(world.tenant), system(reason="test: a fresh order"):
        return services.create_order(
            customer=world.contacts[customer],
            salesperson=world.user(owner),
            lines=[
                services.LineInput(f"Item {i}", Decimal(1), Decimal("100.00"), Decimal("20"))
                for i in range(lines)
            ],
        ).pk


def stored(world, pk) -> Order:
    with tenant_context(world.tenant), system(reason="test: read back"):
        order = Order.objects.get(pk=pk)
        order.line_list = list(order.lines.all())
        order.event_list = list(order.events.order_by("id"))
        return order


# --- 1. errors where they happen --------------------------------------------------------
def test_an_invalid_line_shows_its_errors_in_place_and_keeps_what_was_typed(alpha, world):
    """A quantity that is not a number: 422 with the lines fragment, the error next to the
    field and every typed value still in its field; nothing is written."""
    pk = new_order(world)
    sam = client_for(alpha, "sam")
    typed = {
        "description": "Cable drum",
        "quantity": "twelve",
        "unit_price": "12.50",
        "discount": "5",
        "tax": standard_tax(world).pk,
    }
    answer = sam.post(f"/sales/orders/{pk}/lines/", typed, headers=HTMX)
    html = answer.content.decode()
    assert answer.status_code == 422
    assert "<!doctype" not in html.lower()  # the fragment htmx swaps in place
    assert 'class="errorlist' in html and "Enter a number." in html
    assert 'value="Cable drum"' in html and 'value="12.50"' in html and 'value="twelve"' in html
    assert len(stored(world, pk).line_list) == 1
    # Without JavaScript, the same: the whole order page, answered 422, input kept.
    page = sam.post(f"/sales/orders/{pk}/lines/", typed)
    assert page.status_code == 422 and "<!doctype" in page.content.decode().lower()
    assert 'value="Cable drum"' in page.content.decode()


def test_a_refused_transition_is_a_proper_page_with_the_reason(alpha, world):
    """Confirming an order without lines: the order's page (409), the reason in a notice,
    not raw text on a bare page."""
    pk = new_order(world, lines=0)
    page = client_for(alpha, "sam").post(f"/sales/orders/{pk}/confirm/")
    html = page.content.decode()
    assert page.status_code == 409 and "<!doctype" in html.lower()
    assert re.search(r'id="refusal"[^>]*>[^<]*has no lines to confirm', html)
    assert 'id="lines"' in html  # the order's page, with its lines and actions
    assert stored(world, pk).state == Order.DRAFT


# --- 2. editing lines ---------------------------------------------------------------------
def test_a_line_is_edited_in_place_with_its_history(alpha, world):
    pk = new_order(world)
    line = stored(world, pk).line_list[0]
    sam = client_for(alpha, "sam")
    url = f"/sales/orders/{pk}/lines/{line.pk}/"
    form = sam.get(url, headers=HTMX).content.decode()
    assert 'class="editing"' in form and 'value="Item 0"' in form
    bad = sam.post(
        url, {"description": "Item 0", "quantity": "0", "unit_price": "100"}, headers=HTMX
    )
    assert bad.status_code == 422 and 'class="editing"' in bad.content.decode()
    done = sam.post(
        url,
        {
            "description": "Item 0 (v2)",
            "quantity": "3",
            "unit_price": "100",
            "discount": "10",
            "tax": standard_tax(world).pk,
        },
        headers=HTMX,
    )
    assert done.status_code == 200 and "Item 0 (v2)" in done.content.decode()
    order = stored(world, pk)
    assert order.amount_untaxed == Decimal("270.00") and order.revision == 2
    changed = order.event_list[-1]
    assert changed.kind == OrderEvent.LINE_CHANGED and changed.revision == 2
    assert changed.details["fields"]["quantity"] == ["1", "3"]
    assert changed.details["fields"]["discount"] == ["0", "10"]


def test_sections_and_notes_carry_no_amount(alpha, world):
    pk = new_order(world)
    sam = client_for(alpha, "sam")
    for kind, text in (("section", "Installation"), ("note", "Delivery within 3 weeks")):
        answer = sam.post(
            f"/sales/orders/{pk}/lines/", {"kind": kind, "description": text}, headers=HTMX
        )
        assert answer.status_code == 200 and text in answer.content.decode()
    empty = sam.post(f"/sales/orders/{pk}/lines/", {"kind": "note"}, headers=HTMX)
    assert empty.status_code == 422 and "Write the text" in empty.content.decode()
    order = stored(world, pk)
    assert [line.kind for line in order.line_list] == ["item", "section", "note"]
    assert order.amount_untaxed == Decimal("100.00") and order.amount_total == Decimal("120.00")
    assert all(line.total == 0 for line in order.line_list[1:])
    html = sam.get(f"/sales/orders/{pk}/").content.decode()
    assert '<tr class="section"' in html and '<tr class="note"' in html


def test_a_quotation_is_duplicated_with_its_lines(alpha, world):
    pk = new_order(world, lines=2)
    sam = client_for(alpha, "sam")
    made = sam.post(f"/sales/orders/{pk}/duplicate/")
    assert made.status_code == 302
    copy_pk = int(re.search(r"/orders/(\d+)/", made["Location"])[1])
    original, copy = stored(world, pk), stored(world, copy_pk)
    assert copy.state == Order.DRAFT and copy.number != original.number
    assert copy.salesperson_id == world.user("sam").pk
    assert [(x.description, x.total) for x in copy.line_list] == [
        (x.description, x.total) for x in original.line_list
    ]
    assert copy.event_list[0].details["copied_from"] == original.number


def test_the_customer_of_a_draft_changes_and_a_confirmed_one_is_refused(alpha, world):
    pk = new_order(world)
    sam = client_for(alpha, "sam")
    url = f"/sales/orders/{pk}/edit/"
    assert "Choose a customer" in sam.get(url).content.decode()
    other = world.contacts[1]
    moved = sam.post(url, {"customer": other.pk, "currency": "EUR", "valid_until": ""})
    assert moved.status_code == 302
    order = stored(world, pk)
    assert order.customer_id == other.pk and order.revision == 2
    assert order.event_list[-1].kind == OrderEvent.CHANGED
    assert order.event_list[-1].details["fields"]["customer"][1] == other.name
    sam.post(f"/sales/orders/{pk}/confirm/")
    refused = sam.get(url)
    assert refused.status_code == 409 and "frozen" in refused.content.decode()


# --- 3. actions follow rights ----------------------------------------------------------
class Forms(HTMLParser):
    """The POST forms of a page: (action, {hidden field: value})."""

    def __init__(self):
        super().__init__()
        self.forms, self._current = [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and (attrs.get("method") or "").lower() == "post":
            self._current = [attrs.get("action") or "", {}]
            self.forms.append(self._current)
        elif tag == "input" and self._current is not None and attrs.get("type") == "hidden":
            self._current[1][attrs.get("name")] = attrs.get("value") or ""

    def handle_endtag(self, tag):
        if tag == "form":
            self._current = None


def post_forms(html: str, page: str) -> list:
    parser = Forms()
    parser.feed(html)
    return [
        (action or page, fields)
        for action, fields in parser.forms
        if "/accounts/logout/" not in action
    ]


@pytest.mark.parametrize("name", ["sam", "maria", "rita", "nora", "admin"])
def test_no_page_offers_a_form_its_user_may_not_post(alpha, world, name):
    """S6/S13: every POST form each role is shown, on each sales page, is accepted by the
    access layer when submitted (never the 403 page); the read-only role and a user
    without a role are shown none."""
    client = client_for(alpha, name)
    pk = new_order(world, owner="sam" if name != "maria" else "maria")
    pages = [
        "/",
        "/sales/orders/",
        f"/sales/orders/{pk}/",
        "/sales/contacts/",
        f"/sales/contacts/{world.contacts[0].pk}/",
        "/sales/products/",
        f"/sales/products/{world.products[0].pk}/",
        "/sales/orders/new/",
    ]
    offered = 0
    for page in pages:
        answer = client.get(page)
        if answer.status_code in (403, 404):
            continue  # not offered to this role: no link leads there
        forms = post_forms(answer.content.decode(), page)
        if name in ("rita", "nora"):
            assert forms == [], (page, forms)
        for action, fields in forms:
            if action.endswith("/email/"):
                continue  # sends real e-mail; its rights are the order's change, as below
            result = client.post(action, {**fields, "confirmed": "yes"})
            assert result.status_code != 403, (page, action)
            offered += 1
    assert offered > 0 if name in ("sam", "maria", "admin") else offered == 0


def test_read_only_users_get_pages_not_forms_and_a_refused_write_keeps_the_input(alpha, world):
    """S6: rita (read-only) has no new-quotation page and reads contacts without a form;
    a write she posts anyway is refused on the 403 page, which shows what she typed."""
    rita = client_for(alpha, "rita")
    assert rita.get("/sales/orders/new/").status_code == 403
    assert "New quotation" not in rita.get("/sales/orders/").content.decode()
    contact = world.contacts[0]
    page = rita.get(f"/sales/contacts/{contact.pk}/").content.decode()
    assert 'id="read-only"' in page and "disabled" in page and ">Save<" not in page
    refused = rita.post(
        f"/sales/contacts/{contact.pk}/",
        {"name": "Renamed by Rita", "kind": "company", "password": "not-shown"},
    )
    html = refused.content.decode()
    assert refused.status_code == 403 and "Renamed by Rita" in html
    assert "not-shown" not in html and "csrfmiddlewaretoken" not in html.split("<main>")[1]
    with tenant_context(world.tenant), system(reason="test: unchanged"):
        from oxygis.sales.models import Contact

        assert Contact.objects.get(pk=contact.pk).name == contact.name


def test_destructive_actions_ask_first(alpha, world):
    pk = new_order(world)
    sam = client_for(alpha, "sam")
    asked = sam.post(f"/sales/orders/{pk}/cancel/")
    html = asked.content.decode()
    assert asked.status_code == 200 and 'id="confirm-question"' in html
    assert 'name="confirmed" value="yes"' in html and stored(world, pk).state == Order.DRAFT
    sam.post(f"/sales/orders/{pk}/cancel/", {"confirmed": "yes"})
    assert stored(world, pk).state == Order.CANCELLED


# --- 4. history ---------------------------------------------------------------------------
def test_the_history_is_written_with_the_change_and_read_like_the_order(alpha, world):
    """S6: every change writes its step in the same transaction (a refused change leaves
    none); only who may read the order reads its history."""
    pk = new_order(world)
    sam = client_for(alpha, "sam")
    sam.post(f"/sales/orders/{pk}/lines/", {"description": "x", "quantity": "1"}, headers=HTMX)
    sam.post(f"/sales/orders/{pk}/send/")
    sam.post(f"/sales/orders/{pk}/confirm/")
    sam.post(f"/sales/orders/{pk}/cancel/", {"confirmed": "yes"})
    sam.post(f"/sales/orders/{pk}/draft/")
    kinds = [e.kind for e in stored(world, pk).event_list]
    assert kinds == ["created", "sent", "confirmed", "cancelled", "reopened"]
    page = sam.get(f"/sales/orders/{pk}/").content.decode()
    assert 'id="history"' in page and "Back to quotation" in page
    # A change that fails leaves no step (the same transaction).
    with tenant_context(world.tenant), acting_as(world.user("sam")):
        order = Order.objects.get(pk=pk)
        with pytest.raises(Exception, match="larger than the largest"):
            services.save_line(
                order,
                services.LineInput("huge", Decimal("1e11"), Decimal("1e9"), Decimal("0")),
            )
        assert order.events.count() == 5
    # Sue may not read sam's order, nor its history.
    with tenant_context(world.tenant), acting_as(world.user("sue")):
        assert not OrderEvent.objects.filter(order_id=pk).exists()
    with tenant_context(world.tenant), acting_as(world.user("rita")):
        assert OrderEvent.objects.filter(order_id=pk).count() == 5
    with tenant_context(world.tenant), acting_as(world.user("nora")):
        assert not OrderEvent.objects.filter(order_id=pk).exists()


# --- 6. home page and CSV ---------------------------------------------------------------
def test_the_home_page_follows_the_role(alpha, world):
    sam_html = client_for(alpha, "sam").get("/").content.decode()
    maria_html = client_for(alpha, "maria").get("/").content.decode()
    nora_html = client_for(alpha, "nora").get("/").content.decode()
    with tenant_context(world.tenant), system(reason="test: numbers"):
        sams = set(
            Order.objects.filter(salesperson__username="sam").values_list("number", flat=True)
        )
        sues = set(
            Order.objects.filter(salesperson__username="sue").values_list("number", flat=True)
        )
    shown = set(re.findall(r">(SO\d{5})<", sam_html))
    assert "My open quotations" in sam_html and shown and shown <= sams and not shown & sues
    # Maria (sales manager) follows everyone's quotations, sam's among them.
    assert "Open quotations" in maria_html and set(re.findall(r">(SO\d{5})<", maria_html)) & sams
    assert 'id="month"' in sam_html and "To follow up" in sam_html
    assert "no access to orders" in nora_html and "SO0" not in nora_html


def test_csv_exports_hold_what_the_user_may_see(alpha, world):
    """S6: the export of a list goes through the access layer: sam's holds his orders
    only, rita's everyone's; a formula typed into a name is neutralised."""

    def rows(name, path):
        answer = client_for(alpha, name).get(path)
        assert answer["Content-Type"].startswith("text/csv")
        body = b"".join(answer.streaming_content).decode("utf-8-sig")
        return list(csv.reader(io.StringIO(body)))

    with tenant_context(world.tenant), system(reason="test: numbers"):
        sams = set(
            Order.objects.filter(salesperson__username="sam").values_list("number", flat=True)
        )
        every = set(Order.objects.values_list("number", flat=True))
    mine = rows("sam", "/sales/orders/?format=csv")
    assert mine[0][:3] == ["Number", "Date", "Customer"]
    assert {row[0] for row in mine[1:]} == sams
    assert {row[0] for row in rows("rita", "/sales/orders/?format=csv")[1:]} == every
    assert rows("nora", "/sales/orders/?format=csv")[1:] == []
    assert "Customer" in rows("sam", "/sales/contacts/?format=csv&q=Customer")[1][0]
    products = rows("sam", "/sales/products/?format=csv&q=Widget")
    assert products[0][:2] == ["Name", "SKU"] and len(products) - 1 >= len(world.products)


def test_line_kinds_through_the_api_and_the_pdf(alpha, world):
    """A section title is a line without amount, in the PDF too."""
    from pypdf import PdfReader

    pk = new_order(world)
    sam = client_for(alpha, "sam")
    sam.post(f"/sales/orders/{pk}/lines/", {"kind": "section", "description": "Phase two"})
    pdf = sam.get(f"/sales/orders/{pk}/pdf/").content
    text = PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    assert "Phase two" in text
    with tenant_context(world.tenant), system(reason="test: kinds"):
        assert OrderLine.objects.filter(order_id=pk, kind="section").count() == 1


def test_sections_and_the_declined_state_through_the_api(alpha, world, key_for):  # noqa: F811
    """The API speaks line kinds too: a section has no amount; and lists filter on the
    new "declined" state."""
    pk = new_order(world)
    token = key_for("sam")
    status, order = call(
        alpha,
        "post",
        f"/orders/{pk}/lines",
        token=token,
        body={"kind": "section", "description": "Phase two"},
    )
    line = order["lines"][-1]
    assert status == 201 and line["kind"] == "section" and line["description"] == "Phase two"
    assert float(line["total"]) == 0 and order["amount_total"] == "120.00"
    status, _body = call(alpha, "post", f"/orders/{pk}/lines", token=token, body={"kind": "note"})
    assert status == 400
    with tenant_context(world.tenant), system(reason="test: the customer declines"):
        order = Order.objects.get(pk=pk)
        services.mark_sent(order)
        services.decline_order(order)
    status, body = call(alpha, "get", "/orders?state=declined", token=token)
    assert status == 200 and order.number in [o["number"] for o in body["items"]]
