"""Sending an order by e-mail and opening it from the link (S9).

The link carries, signed with the service key, the tenant, the order and a 192-bit
random token; only the token's SHA-256 digest is stored. It opens one order, on its own
tenant's host, until it expires (a tenant setting, 30 days by default), is replaced by
a new sending, is revoked, or the order is cancelled by the seller.
"""

import hashlib
import secrets
from datetime import timedelta
from urllib.parse import urlencode

from django.core import signing
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from oxygis.accounts.models import SecurityPolicy
from oxygis.audit.events import record
from oxygis.sales import services as sales
from oxygis.sales.models import IllegalTransition, Order
from oxygis.web.mail import send_templated

from .models import OrderLink, PortalFailure

SALT = "oxygis.portal.order-link"
MAX_AGE = timedelta(days=366)  # the stored expiry, shorter, is the one that counts
GUESSES_PER_WINDOW, WINDOW = 20, timedelta(minutes=10)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def send_order(request, order: Order) -> OrderLink:
    """E-mail the order to its customer with a fresh link (older links stop working)."""
    order.authorize("change")
    if order.state not in Order.EDITABLE_STATES:
        raise IllegalTransition(f"order {order.number} is {order.get_state_display().lower()}")
    if not order.lines.exists():
        raise IllegalTransition(f"order {order.number} has no lines to send")
    customer = order.customer
    if not customer.email:
        raise ValidationError(f"{customer.name} has no e-mail address")
    token = secrets.token_urlsafe(24)
    now = timezone.now()
    with transaction.atomic(using=Order.objects.db):
        _revoke(order, now)
        link = OrderLink.objects.create(
            order_id=order.pk,
            token_digest=_digest(token),
            sent_to=customer.email,
            expires_at=now + timedelta(days=SecurityPolicy.current().portal_link_days),
        )
        if order.state == Order.DRAFT:
            sales.mark_sent(order)
    signed = signing.dumps(
        {"tenant": str(request.tenant.id), "order": order.pk, "token": token}, salt=SALT
    )
    url = request.build_absolute_uri(reverse("portal-order")) + "?" + urlencode({"t": signed})
    send_templated(
        customer.email,
        f"Quotation {order.number} from {request.tenant.name}",
        "portal/email/order",
        {"order": order, "url": url, "tenant": request.tenant, "link": link},
    )
    record("portal.sent", request=request, target=order.number, to=customer.email)
    return link


def _revoke(order: Order, now) -> int:
    return OrderLink.objects.filter(order_id=order.pk, revoked_at__isnull=True).update(
        revoked_at=now
    )


def revoke_links(request, order: Order) -> int:
    order.authorize("change")
    count = _revoke(order, timezone.now())
    record("portal.revoked", request=request, target=order.number, count=count)
    return count


def too_many_failures(ip: str | None) -> bool:
    since = timezone.now() - WINDOW
    return PortalFailure.objects.filter(ip=ip, at__gte=since).count() >= GUESSES_PER_WINDOW


def open_link(request, signed: str) -> OrderLink | None:
    """The live link behind ``signed`` for this tenant, or None (and a failure noted)."""
    link = None
    try:
        data = signing.loads(signed or "", salt=SALT, max_age=MAX_AGE)
        if data.get("tenant") == str(request.tenant.id):
            link = OrderLink.objects.filter(
                order_id=int(data["order"]), token_digest=_digest(str(data["token"]))
            ).first()
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        link = None
    if link is None or link.revoked_at or link.expires_at <= timezone.now():
        PortalFailure.objects.create(ip=request.META.get("REMOTE_ADDR") or None)
        return None
    return link


def answer(
    request, link: OrderLink, order: Order, *, confirm: bool, name: str = "", reason: str = ""
) -> None:
    """Record the customer's answer once; the order becomes confirmed or cancelled."""
    if link.response:
        return  # a replay changes nothing
    with transaction.atomic(using=Order.objects.db):
        if confirm:
            sales.confirm_order(order, channel="portal")
        else:
            sales.cancel_order(order)
        link.response = OrderLink.CONFIRMED if confirm else OrderLink.DECLINED
        link.responded_at = timezone.now()
        link.signer_name = name.strip()[:200]
        link.decline_reason = reason.strip()[:2000]
        link.ip = request.META.get("REMOTE_ADDR") or None
        link.user_agent = request.headers.get("User-Agent", "")[:300]
        link.save()
    record(
        "portal.confirmed" if confirm else "portal.declined",
        request=request,
        target=order.number,
        name=link.signer_name,
    )
    seller = order.salesperson
    if seller.email:
        send_templated(
            seller.email,
            f"{order.number} {'confirmed' if confirm else 'declined'} by {order.customer.name}",
            "portal/email/answered",
            {"order": order, "link": link, "tenant": request.tenant},
        )
