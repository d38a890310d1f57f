"""Sending an order by e-mail and opening it from the link (S9).

The link carries, signed with the service key and the tenant's own salt, the tenant, the
order and a 192-bit random token; only the token's SHA-256 digest is stored. It opens one
order, on its own tenant's host, for the customer it was sent to, until it expires (a
tenant setting, 30 days by default), is replaced by a new sending, is revoked, or the
order is cancelled or given to another customer. Every answer is judged on the order as
it is at that moment: sent, to that customer, with lines.
"""

import hashlib
import secrets
from datetime import timedelta
from urllib.parse import urlencode

from django.core import signing
from django.core.exceptions import ValidationError
from django.db import transaction
from django.dispatch import receiver
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from oxygis.accounts.models import SecurityPolicy
from oxygis.audit.events import record
from oxygis.core import limiter
from oxygis.core.mail import send_templated
from oxygis.sales import services as sales
from oxygis.sales.documents import current_document, filename
from oxygis.sales.models import (
    Company,
    IllegalTransition,
    Order,
    OrderEvent,
    OrderLine,
    QuotationDocument,
)
from oxygis.sales.signals import order_cancelled, order_customer_changed
from oxygis.tenancy.credentials import note_revoked, signing_salt
from oxygis.tenancy.hosts import site_url
from oxygis.tenancy.models import CredentialEvent

from .models import OrderLink

SALT = "oxygis.portal.order-link"
SEEN_SALT = "oxygis.portal.seen"
MAX_AGE = timedelta(days=366)  # the stored expiry, shorter, is the one that counts


class PortalRefused(Exception):
    """The customer's answer cannot be taken; the message is for them."""


class StaleRevision(PortalRefused):
    """The customer answered a revision that is no longer the order's current one."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def send_order(request, order: Order) -> OrderLink:
    """E-mail the order to its customer with a fresh link (older links stop working)."""
    order.authorize("change")
    if order.state not in Order.EDITABLE_STATES:
        raise IllegalTransition(
            _("order %(number)s is %(state)s")
            % {"number": order.number, "state": str(order.get_state_display()).lower()}
        )
    if not order.lines.filter(kind=OrderLine.ITEM).exists():
        raise IllegalTransition(
            _("order %(number)s has no lines to send") % {"number": order.number}
        )
    customer = order.customer
    if not customer.email:
        raise ValidationError(_("%(name)s has no e-mail address") % {"name": customer.name})
    try:
        limiter.take(limiter.ORDER_MAILS, f"{request.tenant.id.hex}:{order.pk}")
    except limiter.RateLimited as exc:
        raise ValidationError(
            _("%(number)s was sent too often in the last hour: try again in %(minutes)s minutes.")
            % {"number": order.number, "minutes": exc.retry_after // 60 + 1}
        ) from None
    document = current_document(order)  # the PDF attached is the revision sent
    token = secrets.token_urlsafe(24)
    now = timezone.now()
    with transaction.atomic(using=Order.objects.db):
        _revoke(OrderLink.objects.filter(order_id=order.pk), now)
        link = OrderLink.objects.create(
            order_id=order.pk,
            customer_id=customer.pk,
            token_digest=_digest(token),
            sent_to=customer.email,
            expires_at=now + timedelta(days=SecurityPolicy.current().portal_link_days),
            revision_sent=document.revision,
        )
        if order.state == Order.DRAFT:
            sales.mark_sent(order, to=customer.email)
        else:
            sales.record_event(order, OrderEvent.SENT, to=customer.email)
    signed = signing.dumps(
        {"tenant": str(request.tenant.id), "order": order.pk, "token": token},
        salt=signing_salt(SALT),
    )
    # The canonical address, never the request's Host (link poisoning).
    url = site_url(request.tenant.slug, reverse("portal-order")) + "?" + urlencode({"t": signed})
    # In the customer's language, whatever the seller's.
    with translation.override(document.language):
        send_templated(
            customer.email,
            _("Quotation %(number)s from %(company)s")
            % {"number": order.number, "company": request.tenant.name},
            "portal/email/order",
            {"order": order, "url": url, "tenant": request.tenant, "link": link},
            attachments=[
                (filename(document, order.number), bytes(document.pdf), "application/pdf")
            ],
        )
    record(
        "portal.sent",
        request=request,
        target=order.number,
        to=customer.email,
        revision=document.revision,
        digest=document.sha256,
    )
    return link


def _revoke(links, now) -> int:
    """Revoke ``links`` (a queryset), noting each in the catalog for later restores."""
    live = list(links.filter(revoked_at__isnull=True).values_list("pk", "token_digest"))
    for _pk, digest in live:
        note_revoked(CredentialEvent.LINK_REVOKED, digest)
    return OrderLink.objects.filter(pk__in=[pk for pk, _digest in live]).update(revoked_at=now)


def revoke_links(request, order: Order) -> int:
    order.authorize("change")
    count = _revoke(OrderLink.objects.filter(order_id=order.pk), timezone.now())
    record("portal.revoked", request=request, target=order.number, count=count)
    return count


@receiver(order_cancelled, dispatch_uid="oxygis.portal.cancelled")
def _links_die_with_a_cancel(sender, order, **kwargs):
    # Answered links stay readable (the customer sees their answer); the others die, so
    # that setting the order back to a quotation does not revive them.
    _revoke(OrderLink.objects.filter(order_id=order.pk, response=""), timezone.now())


@receiver(order_customer_changed, dispatch_uid="oxygis.portal.customer-changed")
def _links_die_with_a_new_customer(sender, order, **kwargs):
    _revoke(OrderLink.objects.filter(order_id=order.pk), timezone.now())


def open_link(request, signed: str) -> OrderLink | None:
    """The live link behind ``signed`` for this tenant, or None.

    Each failure costs the client address a token of the shared limiter (guessing)."""
    link = None
    try:
        data = signing.loads(signed or "", salt=signing_salt(SALT), max_age=MAX_AGE)
        if data.get("tenant") == str(request.tenant.id):
            link = OrderLink.objects.filter(
                order_id=int(data["order"]), token_digest=_digest(str(data["token"]))
            ).first()
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        link = None
    if link is None or link.revoked_at or link.expires_at <= timezone.now():
        limiter.take(limiter.SECRET_CHECKS, limiter.client_address(request))
        return None
    return link


def note_opened(link: OrderLink, order: Order) -> None:
    """The customer opened this revision: once per link and revision in the history."""
    with transaction.atomic(using=Order.objects.db):
        first = OrderLink.objects.filter(pk=link.pk, opened_revision__lt=order.revision).update(
            opened_revision=order.revision
        )
        if first:
            sales.record_event(order, OrderEvent.OPENED, to=link.sent_to)


def refusal(link: OrderLink, order: Order, *, confirm: bool) -> str | None:
    """Why the customer may not answer ``order`` through ``link`` now, or None."""
    if order.customer_id != link.customer_id:
        return _("This quotation is no longer addressed to you.")
    if order.state == Order.CONFIRMED:
        return _("This order is already confirmed.")
    if order.state == Order.CANCELLED:
        return _("This quotation was withdrawn.")
    if order.state == Order.DECLINED:
        return _("This quotation was declined.")
    if order.state != Order.SENT:
        return _("This quotation is being revised by the seller: it will be sent to you again.")
    if confirm and not order.lines.filter(kind=OrderLine.ITEM).exists():
        return _("This quotation has no lines to accept.")
    return None


def seen_token(link: OrderLink, document: QuotationDocument) -> str:
    """What the customer's page shows, signed into its forms: the revision and the
    SHA-256 of its document. The answer is taken for exactly that, or not at all."""
    return signing.dumps(
        {"link": link.pk, "revision": document.revision, "digest": document.sha256},
        salt=signing_salt(SEEN_SALT),
    )


def read_seen(link: OrderLink, token: str) -> tuple[int, str] | None:
    """(revision, digest) from a form's signed ``seen`` field, or None if it is not one
    made for this link."""
    try:
        data = signing.loads(token or "", salt=signing_salt(SEEN_SALT), max_age=MAX_AGE)
        if data.get("link") == link.pk:
            return int(data["revision"]), str(data["digest"])
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        pass
    return None


def answer(
    request,
    link: OrderLink,
    order: Order,
    *,
    confirm: bool,
    seen: tuple[int, str],
    name: str = "",
    reason: str = "",
) -> None:
    """Record the customer's answer once; the order becomes confirmed or declined.

    Judged on the order and the link as stored, locked, at this moment (raises
    PortalRefused): a seller's change in between wins, and a replay changes nothing.
    S9: ``seen`` is the (revision, document digest) the customer's page showed; if the
    order has moved on since, nothing is recorded (StaleRevision)."""
    revision, digest = seen
    with transaction.atomic(using=Order.objects.db):
        link = OrderLink.objects.select_for_update().get(pk=link.pk)
        if link.response or link.revoked_at:
            return
        order = Order.objects.select_for_update().get(pk=order.pk)
        problem = refusal(link, order, confirm=confirm)
        if problem:
            raise PortalRefused(problem)
        shown = QuotationDocument.objects.filter(order_id=order.pk, revision=revision).first()
        if revision != order.revision or shown is None or shown.sha256 != digest:
            raise StaleRevision(
                _(
                    "This quotation changed after you opened it: here is the new version. "
                    "Please read it again before you answer."
                )
            )
        # The answer first: the cancel below then leaves this (answered) link alone.
        link.response = OrderLink.CONFIRMED if confirm else OrderLink.DECLINED
        link.responded_at = timezone.now()
        link.signer_name = name.strip()[:200]
        link.decline_reason = reason.strip()[:2000]
        link.ip = request.META.get("REMOTE_ADDR") or None
        link.user_agent = request.headers.get("User-Agent", "")[:300]
        link.answer_revision, link.answer_digest = revision, digest
        link.answer_untaxed, link.answer_tax = order.amount_untaxed, order.amount_tax
        link.answer_total, link.answer_currency = order.amount_total, order.currency
        link.save()
        try:
            if confirm:
                accepted = {"name": link.signer_name, "ip": link.ip, "digest": digest}
                sales.confirm_order(order, channel="portal", event=(OrderEvent.ACCEPTED, accepted))
            else:
                declined = {"reason": link.decline_reason, "ip": link.ip}
                sales.decline_order(order, event=(OrderEvent.DECLINED, declined))
        except IllegalTransition as exc:
            raise PortalRefused(" ".join(exc.messages)) from None
    record(
        "portal.confirmed" if confirm else "portal.declined",
        request=request,
        target=order.number,
        name=link.signer_name,
        revision=revision,
        digest=digest,
        total=str(order.amount_total),
    )
    seller = order.salesperson
    if seller.email:
        company = Company.current()
        with translation.override(seller.language or company.language or "en"):
            subject = (
                _("%(number)s confirmed by %(customer)s")
                if confirm
                else _("%(number)s declined by %(customer)s")
            ) % {"number": order.number, "customer": order.customer.name}
            send_templated(
                seller.email,
                subject,
                "portal/email/answered",
                {"order": order, "link": link, "tenant": request.tenant},
            )
