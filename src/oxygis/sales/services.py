"""Sales actions: every write and state change of orders goes through here.

All of it runs as the current actor, so the access layer applies: a salesperson can only
create, change, confirm or cancel their own orders."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from oxygis.access.actors import current_actor

from .models import IllegalTransition, Order, OrderLine, OrderSequence
from .signals import order_cancelled, order_customer_changed


@dataclass
class LineInput:
    description: str
    quantity: Decimal
    unit_price: Decimal
    tax_rate: Decimal
    product: object = None


def _db():
    return Order.objects.db


def _next_number() -> str:
    # Locked in the caller's transaction: concurrent orders wait, and a rollback
    # returns the number, so the sequence has no gaps (a legal requirement for invoices).
    OrderSequence.objects.get_or_create(pk=1)  # the first order of a tenant makes the row
    sequence = OrderSequence.objects.select_for_update().get(pk=1)
    number = sequence.next_number
    sequence.next_number = number + 1
    sequence.save(update_fields=["next_number"])
    return f"SO{number:05d}"


def create_order(*, customer, salesperson=None, currency: str = "EUR", lines=()) -> Order:
    salesperson = salesperson or current_actor()
    with transaction.atomic(using=_db()):
        order = Order(customer=customer, salesperson=salesperson, currency=currency.upper())
        order.number = _next_number()
        order.save()
        for line in lines:
            _save_line(order, OrderLine(order=order), line)
        order.compute_totals()
        order.save()
    return order


def update_order(order: Order, **fields) -> Order:
    if not order.editable:
        raise _not_editable(order)
    with transaction.atomic(using=_db()):
        previous_customer_id = order.customer_id
        for name, value in fields.items():
            setattr(order, name, value)
        order.full_clean(exclude=["number"])
        order.save()
        if order.customer_id != previous_customer_id:
            order_customer_changed.send(
                Order, order=order, previous_customer_id=previous_customer_id
            )
    return order


def _save_line(order: Order, line: OrderLine, data) -> OrderLine:
    product = getattr(data, "product", None)
    line.product = product
    line.description = data.description or (product.name if product else "")
    line.quantity = Decimal(data.quantity)
    line.unit_price = Decimal(data.unit_price)
    line.tax_rate = Decimal(data.tax_rate)
    line.compute()
    line.full_clean(exclude=["order"])
    line.save()
    return line


def save_line(order: Order, data, line: OrderLine | None = None) -> OrderLine:
    """Add (or change) a line and recompute the order's totals."""
    if not order.editable:
        raise _not_editable(order)
    with transaction.atomic(using=_db()):
        line = _save_line(order, line or OrderLine(order=order), data)
        order.compute_totals()
        order.save()
    return line


def delete_line(order: Order, line: OrderLine) -> None:
    if not order.editable:
        raise _not_editable(order)
    with transaction.atomic(using=_db()):
        line.delete()
        order.compute_totals()
        order.save()


def _transition(order: Order, target: str, **fields) -> Order:
    with transaction.atomic(using=_db()):
        # Judged on the stored state, locked: two answers at once (the seller cancelling
        # while the customer confirms) cannot both pass from the same old state.
        stored = (
            Order.objects.select_for_update()
            .filter(pk=order.pk)
            .values_list("state", flat=True)
            .first()
        )
        if stored is not None:
            order.state = stored
        order.check_transition(target)
        order.state = target
        for name, value in fields.items():
            setattr(order, name, value)
        order.save()
        if target == Order.CANCELLED:
            order_cancelled.send(Order, order=order)
    return order


def mark_sent(order: Order) -> Order:
    return _transition(order, Order.SENT)


def confirm_order(order: Order, *, channel: str = "web") -> Order:
    if not order.lines.exists():
        raise IllegalTransition(f"order {order.number} has no lines to confirm")
    return _transition(
        order, Order.CONFIRMED, confirmed_at=timezone.now(), confirmation_channel=channel
    )


def cancel_order(order: Order) -> Order:
    return _transition(order, Order.CANCELLED)


def reset_to_draft(order: Order) -> Order:
    return _transition(order, Order.DRAFT, confirmed_at=None, confirmation_channel="")


def _not_editable(order: Order):
    return IllegalTransition(
        f"order {order.number} is {order.get_state_display().lower()}: its lines are frozen"
    )
