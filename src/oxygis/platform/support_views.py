"""The tenant's side of support (C14): tickets, the staff-access policy, grants to approve,
deny or revoke, the e-mailed decision link, and the hand-off into a support session.

Tickets and grants are catalog rows: every lookup here is narrowed to the request's
tenant, so another tenant's ticket or grant is simply not found (404).
"""

from __future__ import annotations

import time

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_not_required, permission_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from oxygis.accounts.middleware import LOGIN_AT, SEEN_AT
from oxygis.audit.events import record

from . import grants, tickets
from .feedback import told
from .middleware import SUPPORT_GRANT
from .models import AccessGrant, SupportPolicy, Ticket
from .staff import StaffError

MANAGE = "accounts.manage_support"


class TicketForm(forms.Form):
    subject = forms.CharField(max_length=200)
    category = forms.ChoiceField(choices=Ticket.CATEGORIES)
    priority = forms.TypedChoiceField(
        choices=Ticket.PRIORITIES,
        coerce=int,
        initial=Ticket.NORMAL,
        help_text=_("A security report is always urgent."),
    )
    body = forms.CharField(label=_("Message"), widget=forms.Textarea, max_length=20000)


class ReplyForm(forms.Form):
    body = forms.CharField(label=_("Your answer"), widget=forms.Textarea, max_length=20000)


class PolicyForm(forms.Form):
    staff_access = forms.ChoiceField(
        label=_("Oxygis staff access to this workspace"),
        choices=SupportPolicy.CHOICES,
        widget=forms.RadioSelect,
    )


def _ticket(request, ticket_id) -> Ticket:
    ticket = Ticket.objects.filter(pk=ticket_id, tenant_id=request.tenant.pk).first()
    if ticket is None:
        raise Http404("no such ticket")
    return ticket


def _grant(request, grant_id) -> AccessGrant:
    grant = (
        AccessGrant.objects.select_related("staff", "ticket", "tenant")
        .filter(pk=grant_id, tenant_id=request.tenant.pk)
        .first()
    )
    if grant is None:
        raise Http404("no such grant")
    return grant


@permission_required(MANAGE, raise_exception=True)
def support(request):
    tenant = request.tenant
    current = SupportPolicy.for_tenant(tenant)
    form = PolicyForm(request.POST or None, initial={"staff_access": current})
    if request.method == "POST" and form.is_valid():
        chosen = form.cleaned_data["staff_access"]
        if chosen != current:
            SupportPolicy.objects.update_or_create(
                tenant=tenant,
                defaults={"staff_access": chosen, "updated_by": request.user.get_username()},
            )
            grants.log_step(
                "support.policy_changed",
                tenant,
                by=request.user,
                target=tenant.slug,
                before=current,
                after=chosen,
            )
            messages.success(request, _("Staff access policy saved."))
        return redirect("support")
    context = {
        "tickets": Ticket.objects.filter(tenant_id=tenant.pk).order_by("-updated_at")[:100],
        "grants": AccessGrant.objects.select_related("staff")
        .filter(tenant_id=tenant.pk)
        .order_by("-requested_at")[:100],
        "policy_form": form,
    }
    return render(request, "platform/support.html", context)


@permission_required(MANAGE, raise_exception=True)
def ticket_new(request):
    form = TicketForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            ticket = tickets.open_ticket(
                tenant=request.tenant, user=request.user, **form.cleaned_data
            )
        except StaffError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(
                request, _("Ticket #%(number)s sent to Oxygis support.") % {"number": ticket.pk}
            )
            return redirect("support-ticket", ticket_id=ticket.pk)
    return render(
        request, "web/form_page.html", {"form": form, "title": _("Ask Oxygis support for help")}
    )


@permission_required(MANAGE, raise_exception=True)
def ticket(request, ticket_id):
    item = _ticket(request, ticket_id)
    form = ReplyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            tickets.customer_reply(item, user=request.user, body=form.cleaned_data["body"])
        except StaffError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, _("Your answer was sent to Oxygis support."))
            return redirect("support-ticket", ticket_id=item.pk)
    context = {
        "ticket": item,
        "ticket_messages": item.messages.all(),
        "grants": item.grants.select_related("staff").order_by("-requested_at"),
        "form": form,
    }
    return render(request, "platform/support_ticket.html", context)


@require_POST
@permission_required(MANAGE, raise_exception=True)
def ticket_close(request, ticket_id):
    item = _ticket(request, ticket_id)
    with told(request, f"Ticket #{item.pk} closed; any staff access on it ended."):
        tickets.close_ticket(item, by=request.user)
    return redirect("support-ticket", ticket_id=item.pk)


@require_POST
@permission_required(MANAGE, raise_exception=True)
def grant_decide(request, grant_id, decision):
    grant = _grant(request, grant_id)
    if decision not in ("approve", "deny", "revoke"):
        raise Http404("no such decision")
    done = {"approve": "approved", "deny": "denied", "revoke": "revoked"}[decision]
    with told(request, f"Staff access {done}."):
        if decision == "revoke":
            grants.revoke(grant, by=request.user)
        else:
            getattr(grants, decision)(grant, by=request.user, via="instance")
    return redirect("support-ticket", ticket_id=grant.ticket_id)


# Anonymous by design (reviewed): the e-mailed link is itself the credential of one
# administrator for one grant, signed with the tenant's salt, valid 24 hours; the
# decision is a POST with its CSRF token, recorded under that administrator's name.
@login_not_required
@never_cache
def grant_email_decision(request, token):
    parsed = grants.read_decision_token(token)
    grant = admin = None
    if parsed is not None:
        grant_id, user_id = parsed
        grant = (
            AccessGrant.objects.select_related("staff", "ticket")
            .filter(pk=grant_id, tenant_id=request.tenant.pk)
            .first()
        )
        admin = get_user_model()._default_manager.filter(pk=user_id, is_active=True).first()
    if grant is None or admin is None or not admin.has_perm(MANAGE):
        return render(request, "platform/grant_link_invalid.html", status=404)
    if request.method == "POST":
        decision = request.POST.get("decision")
        try:
            if decision == "approve":
                grants.approve(grant, by=admin, via="e-mail link")
            elif decision == "deny":
                grants.deny(grant, by=admin, via="e-mail link")
            else:
                raise StaffError("choose approve or deny")
        except StaffError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(
                request,
                _("Staff access approved.") if decision == "approve" else _("Staff access denied."),
            )
        grant.refresh_from_db()
    return render(request, "platform/grant_email_decision.html", {"grant": grant, "admin": admin})


# Anonymous by design (reviewed): the hand-off link is a one-time, 60-second credential
# signed by the platform, spent by its first use; it opens a session for the grant's
# staff identity only, never for a tenant user.
@login_not_required
@never_cache
def support_enter(request, token):
    try:
        grant = grants.spend_handoff(token, request.tenant)
    except grants.HandoffRefused as exc:
        record("support.session_refused", request=request, actor=None, why=str(exc))
        return render(request, "platform/support_ended.html", {"refused": True}, status=403)
    request.session.flush()  # whatever this browser held here, it is not carried over
    request.session[SUPPORT_GRANT] = grant.pk
    now = int(time.time())
    request.session[LOGIN_AT] = now
    request.session[SEEN_AT] = now
    grants.log_step(
        "support.session_started",
        request.tenant,
        by=grants.actor_for(grant),
        target=f"ticket #{grant.ticket_id}",
        grant=grant.pk,
        scope=grant.scope,
        until=grant.expires_at.isoformat(),
    )
    return redirect("home")


@require_POST
def support_leave(request):
    """The support person ends their session (a tenant user signs out with the usual
    sign-out, which also ends their session-list entry)."""
    if SUPPORT_GRANT not in request.session:
        return redirect("home")
    actor = request.user  # the StaffActor the middleware built from the live grant
    request.session.flush()
    grants.log_step(
        "support.session_ended",
        request.tenant,
        by=actor,
        target=f"ticket #{actor.ticket_id}",
        grant=actor.grant_id,
    )
    return render(request, "platform/support_ended.html", {"left": True})
