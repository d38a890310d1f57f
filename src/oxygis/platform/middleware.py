"""C14 at the request: staff on the console, support sessions on tenant hosts."""

from __future__ import annotations

import logging
import time

from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.models import AnonymousUser
from django.shortcuts import redirect, render
from django.urls import Resolver404, resolve

from oxygis.audit import accesslog
from oxygis.audit.events import Named, record
from oxygis.tenancy.context import CATALOG, using_database

from .grants import actor_for, live_grant
from .staff import staff_of

log = logging.getLogger("oxygis.platform")

SUPPORT_GRANT = "oxygis_support_grant"  # the session key of a support session's grant

# Where a support session may go: the business pages and API, its way out. Never the
# accounts, users, roles, policy, keys, backups or support settings: the customer's.
SUPPORT_NAMESPACES = frozenset({"api-v1"})
SUPPORT_ROUTES = frozenset({"home", "support-leave", "logout"})
SUPPORT_URL_MODULES = ("oxygis.sales.",)


class ConsoleStaffMiddleware:
    """On the console, a signed-in user must be an active staff member (a catalog user
    without a staff row, e.g. one an old ``createsuperuser`` made, is signed out); the
    member is ``request.staff`` for the views' rights."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.staff = None
        if getattr(request, "is_console", False) and request.user.is_authenticated:
            request.staff = staff_of(request.user)
            if request.staff is not None:
                accesslog.note(request, staff_id=request.staff.pk)
            else:
                logout(request)
                messages.error(request, "This account is not an active Oxygis staff account.")
                return redirect("login")
        return self.get_response(request)


def support_route_allowed(request) -> bool:
    try:
        match = resolve(request.path_info, getattr(request, "urlconf", None))
    except Resolver404:
        return True  # a 404 anyway
    if match.url_name in SUPPORT_ROUTES or set(match.namespaces) & SUPPORT_NAMESPACES:
        return True
    return match.func.__module__.startswith(SUPPORT_URL_MODULES)


class SupportSessionMiddleware:
    """A session opened by a hand-off link carries only its grant's id. On every request
    the grant is read again from the catalog: live, of this tenant, its ticket open, its
    staff member enabled; else the session ends there. The request then runs as the
    grant's ``StaffActor`` (its scope enforced by the access layer), may reach only the
    business pages and API, and is written to the tenant's audit log and the platform's
    (method, path, answer), with the staff member's name, ticket and grant."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        tenant = getattr(request, "tenant", None)
        if tenant is None or SUPPORT_GRANT not in request.session:
            return self.get_response(request)
        grant = live_grant(request.session[SUPPORT_GRANT], tenant)
        if grant is None:
            request.session.flush()
            request.user = AnonymousUser()
            return render(request, "platform/support_ended.html", status=403)
        actor = actor_for(grant)
        request.user = actor
        accesslog.note(
            request, staff_id=grant.staff_id, grant_id=grant.pk, ticket_id=grant.ticket_id
        )
        # The session lasts no longer than its grant, whatever the idle rules say.
        remaining = int(grant.expires_at.timestamp() - time.time())
        request.session.set_expiry(max(1, remaining))
        if not support_route_allowed(request):
            response = render(request, "platform/support_refused.html", status=403)
        else:
            response = self.get_response(request)
        self._audit(request, actor, grant, response.status_code)
        return response

    @staticmethod
    def _audit(request, actor, grant, status: int) -> None:
        details = {
            "method": request.method,
            "status": status,
            "ticket": grant.ticket_id,
            "grant": grant.pk,
            "staff": grant.staff.name,
            "scope": grant.scope,
        }
        target = f"{request.method} {request.path}"[:200]
        record("support.request", request=request, actor=actor, target=target, **details)
        with using_database(CATALOG):
            record(
                "support.request",
                request=request,
                actor=Named(actor.get_username()),
                target=target,
                tenant=request.tenant.slug,
                **details,
            )
