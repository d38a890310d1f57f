"""Quotations a French business can send: the tax table, discounts, the totals per rate,
and the revision that changes with anything the customer would see (S9)."""

import threading
from decimal import ROUND_HALF_UP, Decimal

from django.db import connections
from hypothesis import given, settings
from hypothesis import strategies as st

from oxygis.access.actors import acting_as, system
from oxygis.sales import services
from oxygis.sales.models import Order, OrderLine, Tax
from oxygis.tenancy.databases import tenant_context
from tests.sales.test_views import client_for

CENT = Decimal("0.01")


def cents(value) -> Decimal:
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


line_strategy = st.fixed_dictionaries(
    {
        "quantity": st.decimals(min_value=Decimal("0.001"), max_value=Decimal("9999"), places=3),
        "unit_price": st.decimals(min_value=Decimal("0"), max_value=Decimal("99999"), places=2),
        "discount": st.decimals(min_value=Decimal("0"), max_value=Decimal("100"), places=2),
        "rate": st.sampled_from(
            [Decimal("20"), Decimal("10"), Decimal("5.5"), Decimal("2.1"), Decimal("0")]
        ),
        "included": st.booleans(),
    }
)


@settings(max_examples=300, deadline=None)
@given(st.lists(line_strategy, min_size=1, max_size=12))
def test_totals_are_the_sums_of_the_lines_for_any_rates_and_discounts(rows):
    """Integrity: for any mix of VAT rates (included or not) and discounts, the order's
    untaxed amount, tax and total are the sums of its lines (each rounded once, half up),
    and the breakdown per rate adds up to the same amounts."""
    lines = []
    for row in rows:
        line = OrderLine(
            quantity=row["quantity"],
            unit_price=row["unit_price"],
            discount=row["discount"],
            tax_rate=row["rate"],
            tax_included=row["included"],
            tax_name=f"TVA {row['rate']} %",
        )
        line.compute()
        price = row["quantity"] * row["unit_price"] * (100 - row["discount"]) / 100
        if row["included"]:
            assert line.total == cents(price)  # the customer's price never moves
            assert abs(line.subtotal * (100 + row["rate"]) / 100 - line.total) <= CENT
        else:
            assert line.subtotal == cents(price)
            assert line.tax_amount == cents(line.subtotal * row["rate"] / 100)
        assert line.tax_amount >= 0 and line.total >= line.subtotal
        lines.append(line)
    order = Order()
    order.compute_totals(lines)
    assert order.amount_untaxed == sum(line.subtotal for line in lines)
    assert order.amount_tax == sum(line.tax_amount for line in lines)
    assert order.amount_total == sum(line.total for line in lines)
    assert order.amount_total == order.amount_untaxed + order.amount_tax
    breakdown = order.tax_breakdown(lines)
    assert sum(group["base"] for group in breakdown) == order.amount_untaxed
    assert sum(group["tax"] for group in breakdown) == order.amount_tax
    assert len({(g["rate"], g["included"]) for g in breakdown}) == len(breakdown)


def test_every_workspace_starts_with_the_french_vat_rates(alpha, world):
    """A new tenant's tax table holds 20 %, 10 %, 5.5 %, 2.1 % and 0 %."""
    with tenant_context(world.tenant), system(reason="test: the tax table"):
        table = dict(Tax.objects.filter(included=False).values_list("name", "rate"))
    for name, rate in [
        ("TVA 20 %", "20.00"),
        ("TVA 10 %", "10.00"),
        ("TVA 5,5 %", "5.50"),
        ("TVA 2,1 %", "2.10"),
        ("TVA 0 %", "0.00"),
    ]:
        assert table[name] == Decimal(rate)


def test_a_quotation_with_a_discount_and_mixed_rates(alpha, world):
    """Lines at 20 % with a 10 % discount and at 5.5 %: the totals, and the breakdown per
    rate the page shows (a tax row per rate, on its base)."""
    with tenant_context(world.tenant), system(reason="test: the tax table"):
        standard = Tax.objects.get(name="TVA 20 %")
        reduced = Tax.objects.get(name="TVA 5,5 %")
    with tenant_context(world.tenant), acting_as(world.user("sam")):
        order = services.create_order(customer=world.contacts[0])
        services.save_line(
            order,
            services.LineInput(
                "Desk", Decimal(2), Decimal("500.00"), discount=Decimal(10), tax=standard
            ),
        )
        services.save_line(
            order, services.LineInput("Delivery", Decimal(1), Decimal("100.00"), tax=reduced)
        )
        order.refresh_from_db()
        breakdown = order.tax_breakdown()
    assert order.amount_untaxed == Decimal("1000.00")  # 900 + 100
    assert order.amount_tax == Decimal("185.50")  # 180 + 5.50
    assert order.amount_total == Decimal("1185.50")
    assert [(g["name"], g["base"], g["tax"]) for g in breakdown] == [
        ("TVA 20 %", Decimal("900.00"), Decimal("180.00")),
        ("TVA 5,5 %", Decimal("100.00"), Decimal("5.50")),
    ]
    page = client_for(alpha, "sam").get(f"/sales/orders/{order.pk}/").content.decode()
    assert "TVA 20 % (20% of €900.00)" in page and "TVA 5,5 % (5.5% of €100.00)" in page
    assert "€1,185.50" in page  # English, as this browser asked for nothing else


def test_a_tax_included_in_prices_keeps_the_price(alpha, world):
    """A tax marked as included (TTC): the line's total is its price, the untaxed amount
    is derived from it."""
    with tenant_context(world.tenant), system(reason="test: a TTC tax"):
        ttc, _made = Tax.objects.get_or_create(
            name="TVA 20 % TTC", defaults={"rate": Decimal("20"), "included": True}
        )
    with tenant_context(world.tenant), acting_as(world.user("sam")):
        order = services.create_order(customer=world.contacts[0])
        line = services.save_line(
            order, services.LineInput("Chair", Decimal(1), Decimal("120.00"), tax=ttc)
        )
    assert (line.total, line.subtotal, line.tax_amount) == (
        Decimal("120.00"),
        Decimal("100.00"),
        Decimal("20.00"),
    )


def test_every_change_the_customer_would_see_makes_a_new_revision(alpha, world):
    """S9: lines added, changed or removed, another customer, another currency or
    validity: a new revision each; saving the same values is none."""
    with tenant_context(world.tenant), acting_as(world.user("sam")):
        order = services.create_order(customer=world.contacts[0])
        assert order.revision == 1
        line = services.save_line(
            order, services.LineInput("A", Decimal(1), Decimal("10.00"), Decimal(20))
        )
        services.save_line(
            order,
            services.LineInput("A", Decimal(1), Decimal("10.00"), Decimal(20), discount=5),
            line,
        )
        services.update_order(order, customer=world.contacts[1])
        services.update_order(order, currency="USD")
        services.update_order(order, currency="USD")  # unchanged: no new revision
        services.delete_line(order, line)
        order.refresh_from_db()
    assert order.revision == 6


def test_concurrent_writers_each_get_their_own_revision(alpha, world):
    """S9 under load: writers adding lines to one order at the same time. Each change
    gets its own revision number (no two contents share one, none is lost): the
    final revision counts every acknowledged write, and so does the order's history
    (one step per acknowledged write, each naming its own revision)."""
    with tenant_context(world.tenant), acting_as(world.user("sam")):
        order = services.create_order(customer=world.contacts[0])
    writers, each = 4, 5
    acknowledged, errors = [], []

    def write(n):
        try:
            with tenant_context(world.tenant), acting_as(world.user("sam")):
                mine = Order.objects.get(pk=order.pk)
                for i in range(each):
                    services.save_line(
                        mine, services.LineInput(f"W{n}-{i}", Decimal(1), Decimal("1.00"))
                    )
                    acknowledged.append(mine.revision)
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    with tenant_context(world.tenant), system(reason="test: count"):
        stored = Order.objects.get(pk=order.pk)
        lines = stored.lines.count()
        steps = list(stored.events.filter(kind="line_added").values_list("revision", flat=True))
    assert lines == len(acknowledged) == writers * each
    assert sorted(steps) == sorted(acknowledged)  # a step per write, with its revision
    assert stored.revision == 1 + writers * each
    assert sorted(acknowledged) == list(range(2, 2 + writers * each))  # all distinct
    assert stored.amount_untaxed == Decimal(writers * each)
