"""Orders: amounts with Decimal and explicit rounding, the state machine, gap-free numbers."""

from decimal import Decimal

import pytest

from oxygis.access.actors import acting_as
from oxygis.sales import services
from oxygis.sales.models import IllegalTransition, Order, money
from oxygis.tenancy.databases import tenant_context


def test_money_rounds_half_up_to_the_cent():
    assert money(Decimal("1.005")) == Decimal("1.01")
    assert money(Decimal("1.004")) == Decimal("1.00")
    assert money(Decimal("-1.005")) == Decimal("-1.01")


def test_totals_are_exact(world):
    """S13 data: untaxed, tax and total from lines, each line rounded explicitly."""
    with tenant_context(world.tenant), acting_as(world.user("sam")):
        order = services.create_order(
            customer=world.contacts[0],
            lines=[
                services.LineInput("A", Decimal("0.335"), Decimal("3.00"), Decimal("21")),
                services.LineInput("B", Decimal("1.5"), Decimal("19.99"), Decimal("6")),
            ],
        )
        # 0.335 x 3.00 = 1.005 -> 1.01 ; tax 21% = 0.2121 -> 0.21
        # 1.5 x 19.99 = 29.985 -> 29.99 ; tax 6% = 1.7994 -> 1.80
        assert order.amount_untaxed == Decimal("31.00")
        assert order.amount_tax == Decimal("2.01")
        assert order.amount_total == Decimal("33.01")
        assert order.salesperson == world.user("sam")


def test_state_machine_refuses_illegal_moves(world):
    """Illegal transitions are refused in the model layer with a clear message."""
    with tenant_context(world.tenant), acting_as(world.user("sam")):
        order = services.create_order(customer=world.contacts[0])
        with pytest.raises(IllegalTransition, match="has no lines"):
            services.confirm_order(order)
        services.save_line(order, services.LineInput("A", Decimal(1), Decimal(5), Decimal(21)))
        services.mark_sent(order)
        services.confirm_order(order, channel="web")
        assert order.state == Order.CONFIRMED and order.confirmed_at is not None
        with pytest.raises(IllegalTransition, match="cannot go from confirmed to quotation sent"):
            services.mark_sent(order)
        with pytest.raises(IllegalTransition, match="lines are frozen"):
            services.save_line(order, services.LineInput("B", Decimal(1), Decimal(5), Decimal(21)))
        services.cancel_order(order)
        with pytest.raises(IllegalTransition, match="cannot go from cancelled to confirmed"):
            services.confirm_order(order)
        services.reset_to_draft(order)
        assert order.state == Order.DRAFT and order.confirmed_at is None


def test_numbers_are_gap_free_even_after_a_failure(world):
    """Order numbers follow each other; a rolled-back creation gives its number back."""
    with tenant_context(world.tenant), acting_as(world.user("maria")):
        first = services.create_order(customer=world.contacts[0])
        with pytest.raises(Exception, match="Ensure this value is greater"):
            services.create_order(
                customer=world.contacts[0],
                lines=[services.LineInput("bad", Decimal("-1"), Decimal(1), Decimal(21))],
            )
        second = services.create_order(customer=world.contacts[0])
    assert int(second.number[2:]) == int(first.number[2:]) + 1


def test_salesperson_cannot_create_orders_for_others(world):
    """S13: a salesperson's new order is theirs; for someone else it is refused."""
    from django.core.exceptions import PermissionDenied

    with (
        tenant_context(world.tenant),
        acting_as(world.user("sam")),
        pytest.raises(PermissionDenied),
    ):
        services.create_order(customer=world.contacts[0], salesperson=world.user("sue"))
