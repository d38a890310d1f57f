"""Benchmark-only URLs: Oxygis's, plus a bare Django view serving the API's order list.

``/bare/orders`` answers what ``/api/v1/orders`` answers for a read key (the first 50
orders with their lines, and the count) with nothing but Django: the key looked up, the
rows read as the system (no access layer), a JsonResponse. bench/scale.py compares the
two. Never used by the service or the tests.
"""

from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.urls import path

from oxygis.access.actors import SystemActor, acting_as
from oxygis.accounts.apikeys import authenticate_token
from oxygis.sales.models import Order
from oxygis.urls import urlpatterns as oxygis_urlpatterns

_BARE = SystemActor("benchmark: the bare Django view")
ORDER_FIELDS = [
    "id",
    "number",
    "customer_id",
    "salesperson_id",
    "currency",
    "state",
    "confirmed_at",
    "confirmation_channel",
    "amount_untaxed",
    "amount_tax",
    "amount_total",
]
LINE_FIELDS = ["id", "product_id", "description", "quantity", "unit_price", "tax_rate", "subtotal"]


@login_not_required
def bare_orders(request):
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    with acting_as(_BARE):
        if authenticate_token(token) is None:
            return JsonResponse({"detail": "Unauthorized"}, status=401)
        orders = Order.objects.prefetch_related("lines")
        items = [
            {
                **{name: getattr(order, name) for name in ORDER_FIELDS},
                "lines": [
                    {name: getattr(line, name) for name in LINE_FIELDS}
                    for line in order.lines.all()
                ],
            }
            for order in orders[:50]
        ]
        return JsonResponse({"items": items, "count": orders.count()})


urlpatterns = [path("bare/orders", bare_orders), *oxygis_urlpatterns]
