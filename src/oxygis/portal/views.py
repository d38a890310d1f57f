"""The customer's page: one order, reached by its signed link, with no account."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from oxygis.access.actors import PortalActor, acting_as
from oxygis.access.lookups import get_visible_or_404
from oxygis.audit import accesslog
from oxygis.core import limiter
from oxygis.core.text import validate_single_line
from oxygis.sales.models import Order
from oxygis.web.csrf import csrf_token_only

from . import services
from .models import OrderLink


class ConfirmForm(forms.Form):
    name = forms.CharField(
        label="Your full name", max_length=200, validators=[validate_single_line]
    )


class DeclineForm(forms.Form):
    reason = forms.CharField(
        label="Reason (optional)",
        max_length=2000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
    )


def _private(response):
    # The URL holds the link: no Referer to other sites, no copy in any cache.
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "no-store"
    return response


# Anonymous by design (S9): the signed, unique, e-mailed link is the credential, and it
# opens this one order only (PortalActor). Its no-referrer policy makes browsers post its
# forms with "Origin: null": the CSRF token alone is checked (web/csrf.py).
@login_not_required
@csrf_token_only
@never_cache
def order_page(request):
    try:
        # Before the link is even looked at: an address that guessed too much waits.
        limiter.check(limiter.SECRET_CHECKS, limiter.client_address(request))
        signed = request.POST.get("t") or request.GET.get("t", "")
        link = services.open_link(request, signed)
    except limiter.RateLimited as exc:
        return _private(limiter.limited_response(request, exc))
    if link is None:
        return _private(render(request, "404.html", status=404))
    accesslog.note(request, portal_link_id=link.pk)
    with acting_as(PortalActor(link.order_id)):
        order = (
            Order.objects.select_related("customer", "salesperson").filter(pk=link.order_id).first()
        )
        gone = (
            order is None
            or order.customer_id != link.customer_id
            or (order.state == Order.CANCELLED and link.response != OrderLink.DECLINED)
        )
        if gone:
            return _private(render(request, "404.html", status=404))
        confirm_form, decline_form = ConfirmForm(), DeclineForm()
        status, refused = 200, None
        if request.method == "POST" and not link.response:
            action = request.POST.get("action")
            form = None
            if action == "confirm":
                form = confirm_form = ConfirmForm(request.POST)
            elif action == "decline":
                form = decline_form = DeclineForm(request.POST)
            if form is not None and form.is_valid():
                try:
                    services.answer(
                        request,
                        link,
                        order,
                        confirm=action == "confirm",
                        name=form.cleaned_data.get("name", ""),
                        reason=form.cleaned_data.get("reason", ""),
                    )
                except services.PortalRefused as exc:
                    refused, status = str(exc), 409
                link.refresh_from_db()
                order.refresh_from_db()
        if refused is None and not link.response:
            refused = services.refusal(link, order, confirm=True)
        context = {
            "order": order,
            "link": link,
            "lines": list(order.lines.all()),
            "signed": signed,
            "confirm_form": confirm_form,
            "decline_form": decline_form,
            "refused": refused,
        }
        return _private(render(request, "portal/order.html", context, status=status))


@require_POST
def send_link(request, pk: int):
    order = get_visible_or_404(Order, pk=pk)
    try:
        link = services.send_order(request, order)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{order.number} sent to {link.sent_to}.")
    return redirect("order", pk=order.pk)


@require_POST
def revoke_link(request, pk: int):
    order = get_visible_or_404(Order, pk=pk)
    count = services.revoke_links(request, order)
    messages.success(request, f"{count} link(s) revoked.")
    return redirect("order", pk=order.pk)
