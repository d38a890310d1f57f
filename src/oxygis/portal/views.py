"""The customer's page: one order, reached by its signed link, with no account."""

from functools import wraps

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from oxygis.access.actors import PortalActor, acting_as
from oxygis.access.lookups import get_visible_or_404
from oxygis.audit import accesslog
from oxygis.core import limiter
from oxygis.core.text import validate_single_line
from oxygis.sales.documents import current_document, document_language, filename
from oxygis.sales.models import Order
from oxygis.web.csrf import csrf_token_only
from oxygis.web.views import confirm_page, confirmed

from . import services
from .models import OrderLink


class ConfirmForm(forms.Form):
    name = forms.CharField(
        label=gettext_lazy("Your full name"), max_length=200, validators=[validate_single_line]
    )


class DeclineForm(forms.Form):
    reason = forms.CharField(
        label=gettext_lazy("Reason (optional)"),
        max_length=2000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
    )


def _private(response):
    # The URL holds the link: no Referer to other sites, no copy in any cache.
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "no-store"
    return response


def _open(request):
    """(link, None) for the live link of this request, or (None, the response to give):
    the limiter's answer, or the same 404 for every link that does not open."""
    try:
        # Before the link is even looked at: an address that guessed too much waits.
        limiter.check(limiter.SECRET_CHECKS, limiter.client_address(request))
        signed = request.POST.get("t") or request.GET.get("t", "")
        link = services.open_link(request, signed)
    except limiter.RateLimited as exc:
        return None, _private(limiter.limited_response(request, exc))
    if link is None:
        return None, _private(render(request, "404.html", status=404))
    accesslog.note(request, portal_link_id=link.pk)
    return link, None


def _order_of(link):
    """The link's order as its customer may see it, or None (gone for them)."""
    order = Order.objects.select_related("customer", "salesperson").filter(pk=link.order_id).first()
    gone = (
        order is None
        or order.customer_id != link.customer_id
        or (order.state == Order.CANCELLED and link.response != OrderLink.DECLINED)
    )
    return None if gone else order


def customer_link(view):
    """Open the request's link, act as its customer (PortalActor: that one order), and
    call ``view(request, link, order)``; every link that opens nothing gets the same 404."""

    @wraps(view)
    def opened(request):
        link, response = _open(request)
        if link is None:
            return response
        with acting_as(PortalActor(link.order_id)):
            order = _order_of(link)
            if order is None:
                return _private(render(request, "404.html", status=404))
            return view(request, link, order)

    return opened


# Anonymous by design (S9): the signed, unique, e-mailed link is the credential, and it
# opens this one order only (PortalActor). Its no-referrer policy makes browsers post its
# forms with "Origin: null": the CSRF token alone is checked (web/csrf.py).
@login_not_required
@csrf_token_only
@never_cache
@customer_link
def order_page(request, link, order):
    # The customer's page is in the customer's language (their contact's, else the
    # company's), whoever opens it.
    translation.activate(document_language(order))
    request.LANGUAGE_CODE = translation.get_language()
    confirm_form, decline_form = ConfirmForm(), DeclineForm()
    status, refused, stale = 200, None, False
    if request.method == "POST" and not link.response:
        action = request.POST.get("action")
        form = None
        if action == "confirm":
            form = confirm_form = ConfirmForm(request.POST)
        elif action == "decline":
            form = decline_form = DeclineForm(request.POST)
        seen = services.read_seen(link, request.POST.get("seen", ""))
        problem = form is not None and services.refusal(link, order, confirm=action == "confirm")
        if problem:
            refused, status = problem, 409
        elif form is not None and seen is None:
            refused, status = _("This page is out of date: here it is again."), 409
        elif form is not None and form.is_valid():
            try:
                services.answer(
                    request,
                    link,
                    order,
                    confirm=action == "confirm",
                    seen=seen,
                    name=form.cleaned_data.get("name", ""),
                    reason=form.cleaned_data.get("reason", ""),
                )
            except services.StaleRevision as exc:
                stale, refused, status = True, str(exc), 409
            except services.PortalRefused as exc:
                refused, status = str(exc), 409
            link.refresh_from_db()
            order.refresh_from_db()
    document = current_document(order)
    if stale:
        refused = None  # the new revision is shown, with the forms to answer it
        confirm_form, decline_form = ConfirmForm(), DeclineForm()
    elif refused is None and not link.response:
        refused = services.refusal(link, order, confirm=True)
    if not link.response:
        services.note_opened(link, order)
    context = {
        "order": order,
        "link": link,
        "lines": list(order.lines.all()),
        "breakdown": order.tax_breakdown(),
        "signed": request.POST.get("t") or request.GET.get("t", ""),
        "seen": services.seen_token(link, document),
        "document": document,
        "stale": stale,
        "confirm_form": confirm_form,
        "decline_form": decline_form,
        "refused": refused,
    }
    return _private(render(request, "portal/order.html", context, status=status))


@login_not_required
@require_GET
@never_cache
@customer_link
def order_pdf(request, link, order):
    """The PDF of the revision the customer's page shows (the same link, the same 404)."""
    return _private(pdf_response(current_document(order), order.number))


def pdf_response(document, number: str) -> HttpResponse:
    response = HttpResponse(bytes(document.pdf), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{filename(document, number)}"'
    response["X-Document-SHA256"] = document.sha256
    return response


@require_POST
def send_link(request, pk: int):
    order = get_visible_or_404(Order, pk=pk)
    try:
        link = services.send_order(request, order)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(
            request,
            _("%(number)s sent to %(email)s.") % {"number": order.number, "email": link.sent_to},
        )
    return redirect("order", pk=order.pk)


@require_POST
def revoke_link(request, pk: int):
    order = get_visible_or_404(Order, pk=pk)
    if not confirmed(request):
        return confirm_page(
            request,
            question=_(
                "Revoke the link sent for %(number)s? The customer can no longer open or "
                "answer it, until you send the quotation again."
            )
            % {"number": order.number},
            button=_("Revoke the link"),
            back=reverse("order", args=[order.pk]),
        )
    count = services.revoke_links(request, order)
    messages.success(
        request,
        ngettext("%(count)s link revoked.", "%(count)s links revoked.", count) % {"count": count},
    )
    return redirect("order", pk=order.pk)
