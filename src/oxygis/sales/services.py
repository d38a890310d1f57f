"""Sales actions: every write and state change of orders goes through here.

All of it runs as the current actor, so the access layer applies: a salesperson can only
create, change, confirm or cancel their own orders."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from oxygis.access.actors import PortalActor, current_actor

from .models import (
    ZERO,
    Company,
    IllegalTransition,
    Order,
    OrderEvent,
    OrderLine,
    OrderSequence,
    Tax,
)
from .signals import order_cancelled, order_customer_changed


@dataclass
class LineInput:
    """A line as typed: ``tax`` (a row of the tax table) or else ``tax_rate`` (matched to
    the table's tax of that rate, if any); with neither, the product's tax, or none."""

    description: str
    quantity: Decimal
    unit_price: Decimal
    tax_rate: Decimal | None = None
    product: object = None
    discount: Decimal = ZERO
    tax: object = None
    kind: str = OrderLine.ITEM


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


def _lock(order: Order) -> None:
    """Lock the order's row for the rest of the caller's transaction, and re-read what
    other writers may have changed. Threat: lost updates. Two writers adding lines at
    once would each add up the lines they can see and the last total would win, one
    line short; locked first, the second waits, then sees the first's line."""
    stored = (
        Order.objects.select_for_update().filter(pk=order.pk).values("state", "revision").first()
    )
    if stored is not None:
        order.state, order.revision = stored["state"], stored["revision"]
    if not order.editable:
        raise not_editable(order)


def _revise(order: Order) -> None:
    """S9: the order changed in a way its customer would see: a new revision.

    Incremented in the database (UPDATE ... revision + 1), in the caller's transaction:
    two writers at once each get their own number, never the same one for two contents."""
    Order.objects.filter(pk=order.pk).update(revision=F("revision") + 1)
    order.revision = Order.objects.filter(pk=order.pk).values_list("revision", flat=True).get()


def _actor_name(actor) -> str:
    """Who did it, as named at the time ("" for the customer, through their link)."""
    if isinstance(actor, PortalActor):
        return ""
    if hasattr(actor, "get_full_name"):
        return actor.get_full_name() or actor.get_username()
    return str(actor)


def record_event(order: Order, kind: str, **details) -> OrderEvent:
    """Add a step to ``order``'s history; call it inside the change's transaction."""
    return OrderEvent.objects.create(
        order=order,
        kind=kind,
        actor=_actor_name(current_actor())[:200],
        revision=order.revision,
        details={k: v for k, v in details.items() if v not in (None, "")},
    )


def _shown(value) -> str:
    """A field's value as the history shows it."""
    if value is None:
        return ""
    return str(value)


def create_order(
    *,
    customer,
    salesperson=None,
    currency: str = "EUR",
    lines=(),
    valid_until=None,
    copied_from: Order | None = None,
) -> Order:
    salesperson = salesperson or current_actor()
    if valid_until is None:
        days = Company.current().quotation_validity_days
        valid_until = timezone.localdate() + timedelta(days=days)
    with transaction.atomic(using=_db()):
        order = Order(
            customer=customer,
            salesperson=salesperson,
            currency=currency.upper(),
            valid_until=valid_until,
        )
        order.number = _next_number()
        order.save()
        for line in lines:
            _save_line(order, OrderLine(order=order), line)
        order.compute_totals()
        order.save()
        record_event(
            order,
            OrderEvent.CREATED,
            customer=customer.name,
            copied_from=copied_from.number if copied_from else None,
        )
    return order


def duplicate_order(order: Order) -> Order:
    """A new quotation with ``order``'s customer and lines, as a draft of the current
    actor's (or of the same salesperson, for someone who may change every order)."""
    lines = [
        LineInput(
            kind=line.kind,
            description=line.description,
            quantity=line.quantity,
            unit_price=line.unit_price,
            discount=line.discount,
            tax=line.tax,
            tax_rate=line.tax_rate,
            product=line.product,
        )
        for line in order.lines.all()
    ]
    actor = current_actor()
    salesperson = order.salesperson if order.allows(actor, "change") else actor
    return create_order(
        customer=order.customer,
        salesperson=salesperson,
        currency=order.currency,
        lines=lines,
        copied_from=order,
    )


def update_order(order: Order, **fields) -> Order:
    if not order.editable:
        raise not_editable(order)
    with transaction.atomic(using=_db()):
        _lock(order)
        previous_customer_id = order.customer_id
        changes = {}
        for name, value in fields.items():
            before = getattr(order, name)
            if before != value:
                changes[name] = [_shown(before), _shown(value)]
            setattr(order, name, value)
        order.full_clean(exclude=["number"])
        if changes:
            _revise(order)
        order.save()
        if changes:
            record_event(order, OrderEvent.CHANGED, fields=changes)
        if order.customer_id != previous_customer_id:
            order_customer_changed.send(
                Order, order=order, previous_customer_id=previous_customer_id
            )
    return order


def _tax_of(data, product):
    """(tax row or None, rate) for a line typed as ``data``."""
    tax, rate = getattr(data, "tax", None), getattr(data, "tax_rate", None)
    if tax is None and rate is None and product is not None:
        tax, rate = product.tax, product.tax_rate
    if tax is not None:
        return tax, tax.rate
    rate = Decimal(rate if rate is not None else ZERO)
    return Tax.for_rate(rate), rate


def _save_line(order: Order, line: OrderLine, data) -> OrderLine:
    line.kind = getattr(data, "kind", None) or OrderLine.ITEM
    if line.kind != OrderLine.ITEM:
        line.product, line.description = None, data.description
        line.compute()
        line.full_clean(exclude=["order"])
        line.save()
        return line
    product = getattr(data, "product", None)
    line.product = product
    line.description = data.description or (product.name if product else "")
    line.quantity = Decimal(data.quantity)
    line.unit_price = Decimal(data.unit_price)
    line.discount = Decimal(getattr(data, "discount", None) or ZERO)
    tax, line.tax_rate = _tax_of(data, product)
    line.tax = tax
    line.tax_name = tax.name if tax is not None else ""
    line.tax_included = tax.included if tax is not None else False
    line.compute()
    line.full_clean(exclude=["order"])
    line.save()
    return line


def save_line(order: Order, data, line: OrderLine | None = None) -> OrderLine:
    """Add (or change) a line and recompute the order's totals."""
    if not order.editable:
        raise not_editable(order)
    with transaction.atomic(using=_db()):
        _lock(order)
        before = _line_summary(line) if line is not None else None
        line = _save_line(order, line or OrderLine(order=order), data)
        order.compute_totals()
        _revise(order)
        order.save()
        after = _line_summary(line)
        if before is None:
            record_event(order, OrderEvent.LINE_ADDED, line=after)
        else:
            record_event(
                order,
                OrderEvent.LINE_CHANGED,
                line=after,
                fields={
                    k: [before.get(k, ""), value]
                    for k, value in after.items()
                    if k != "kind" and before.get(k, "") != value
                },
            )
    return line


def _number(value) -> str:
    """12.500 -> "12.5", 10.00 -> "10" (never "1E+1")."""
    return format(Decimal(value).normalize(), "f")


def _line_summary(line: OrderLine) -> dict:
    if not line.priced:
        return {"description": line.description, "kind": line.kind}
    return {
        "description": line.description,
        "quantity": _number(line.quantity),
        "unit_price": _shown(line.unit_price),
        "discount": _number(line.discount),
        "tax": line.tax_name or _number(line.tax_rate),
    }


def delete_line(order: Order, line: OrderLine) -> None:
    if not order.editable:
        raise not_editable(order)
    with transaction.atomic(using=_db()):
        _lock(order)
        line.delete()
        order.compute_totals()
        _revise(order)
        order.save()
        record_event(order, OrderEvent.LINE_REMOVED, line=_line_summary(line))


TRANSITION_EVENTS = {
    Order.SENT: OrderEvent.SENT,
    Order.CONFIRMED: OrderEvent.CONFIRMED,
    Order.DECLINED: OrderEvent.DECLINED,
    Order.CANCELLED: OrderEvent.CANCELLED,
    Order.DRAFT: OrderEvent.REOPENED,
}


def _transition(order: Order, target: str, event=None, **fields) -> Order:
    """Move ``order`` to ``target``, with its history: ``event``, (kind, details) in
    place of the transition's own."""
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
        kind, details = event or (TRANSITION_EVENTS[target], {})
        record_event(order, kind, **details)
        if target in (Order.CANCELLED, Order.DECLINED):
            order_cancelled.send(Order, order=order)
    return order


def mark_sent(order: Order, *, to: str = "") -> Order:
    return _transition(order, Order.SENT, event=(OrderEvent.SENT, {"to": to}))


def confirm_order(order: Order, *, channel: str = "web", event=None) -> Order:
    if not order.lines.filter(kind=OrderLine.ITEM).exists():
        raise IllegalTransition(
            _("order %(number)s has no lines to confirm") % {"number": order.number}
        )
    return _transition(
        order,
        Order.CONFIRMED,
        event=event,
        confirmed_at=timezone.now(),
        confirmation_channel=channel,
    )


def decline_order(order: Order, *, event=None) -> Order:
    """The customer's no (through their link): its own state, not a seller's cancel."""
    return _transition(order, Order.DECLINED, event=event)


def cancel_order(order: Order) -> Order:
    return _transition(order, Order.CANCELLED)


def reset_to_draft(order: Order) -> Order:
    return _transition(order, Order.DRAFT, confirmed_at=None, confirmation_channel="")


def not_editable(order: Order):
    return IllegalTransition(
        _("order %(number)s is %(state)s: its lines are frozen")
        % {"number": order.number, "state": str(order.get_state_display()).lower()}
    )


# --- company details and tax table (administrators) --------------------------------------
def save_company(request, form) -> Company:
    """Save the company details (and the logo, already re-encoded by the form), audited."""
    from oxygis.audit.events import record

    changed = [name for name in form.changed_data if name != "logo_upload"]
    with transaction.atomic(using=Company.objects.db):
        company = form.save(commit=False)
        logo = form.cleaned_data.get("logo_upload")
        if logo:
            company.logo = logo
            changed.append("logo")
        elif form.cleaned_data.get("remove_logo"):
            company.logo = b""
        company.pk = 1
        company.save()
        record("company.changed", request=request, fields=sorted(set(changed)))
    return company


def save_tax(request, form) -> Tax:
    from oxygis.audit.events import record

    with transaction.atomic(using=Tax.objects.db):
        tax = form.save()
        record(
            "tax.saved",
            request=request,
            target=tax.name,
            rate=str(tax.rate),
            included=tax.included,
            active=tax.active,
        )
    return tax
