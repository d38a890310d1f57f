"""The home page's figures for the current actor: their open quotations, the ones to
follow up, the recently confirmed, the month's totals. Every query goes through the
access layer, so each role sees the orders it may see, and nothing else."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from django.db.models import Count, Sum
from django.utils import timezone

from oxygis.access.rights import rights

from .models import Order

FOLLOW_UP_DAYS = 7  # a sent quotation expiring within this many days, or sent that long ago
SHOWN = 8


@dataclass
class Dashboard:
    sees_orders: bool = False
    everyone: bool = False  # the actor sees every order (not only their own)
    can_add: bool = False
    open_quotations: list = field(default_factory=list)
    follow_up: list = field(default_factory=list)
    confirmed: list = field(default_factory=list)
    month_totals: list = field(default_factory=list)  # [{"currency", "count", "untaxed"}]
    month_quotations: int = 0


def dashboard(user) -> Dashboard:
    board = Dashboard(sees_orders=rights(Order).view)
    if not board.sees_orders:
        return board
    board.everyone = user.has_perm("sales.view_all_orders")
    board.can_add = rights(Order).add
    orders = Order.objects.select_related("customer", "salesperson")
    if not board.everyone:
        orders = orders.filter(salesperson_id=user.pk)
    now = timezone.now()
    today = timezone.localdate()
    board.open_quotations = list(
        orders.filter(state__in=[Order.DRAFT, Order.SENT]).order_by("-updated_at")[:SHOWN]
    )
    soon = today + timedelta(days=FOLLOW_UP_DAYS)
    stale = now - timedelta(days=FOLLOW_UP_DAYS)
    # Sent, and either expiring soon or without an answer for a while.
    board.follow_up = list(
        orders.filter(state=Order.SENT)
        .exclude(valid_until__gt=soon, updated_at__gt=stale)
        .order_by("valid_until", "updated_at")[:SHOWN]
    )
    board.confirmed = list(orders.filter(state=Order.CONFIRMED).order_by("-confirmed_at")[:SHOWN])
    start = timezone.localtime(now).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    board.month_totals = list(
        orders.filter(state=Order.CONFIRMED, confirmed_at__gte=start)
        .values("currency")
        .annotate(count=Count("id"), untaxed=Sum("amount_untaxed"))
        .order_by("currency")
    )
    board.month_quotations = orders.filter(created_at__gte=start).count()
    return board
