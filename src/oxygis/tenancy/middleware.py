"""Request-level tenancy: trusted proxies, then host -> tenant -> bound database."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render

from .context import CATALOG, using_database
from .databases import tenant_context
from .guard import TenantBusy
from .hosts import CONSOLE, classify_host
from .models import Tenant

_FORWARDED = (
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_FORWARDED",
)


def _trusted(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in settings.TRUSTED_PROXIES)


def _last(value: str) -> str:
    return value.split(",")[-1].strip()


class TrustedProxyMiddleware:
    """Honour X-Forwarded-* only from OXYGIS_TRUSTED_PROXIES; strip them from anyone else.

    Threat: a client sending ``X-Forwarded-Host: victim.example`` or
    ``X-Forwarded-Proto: https`` to pose as another tenant or as a secure request.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        meta = request.META
        if _trusted(meta.get("REMOTE_ADDR", "")):
            if meta.get("HTTP_X_FORWARDED_HOST"):
                meta["HTTP_HOST"] = _last(meta["HTTP_X_FORWARDED_HOST"])
            if meta.get("HTTP_X_FORWARDED_PROTO"):
                proto = _last(meta["HTTP_X_FORWARDED_PROTO"]).lower()
                meta["wsgi.url_scheme"] = "https" if proto == "https" else "http"
            if meta.get("HTTP_X_FORWARDED_FOR"):
                # The client is the right-most address that is not one of our proxies.
                for hop in reversed(meta["HTTP_X_FORWARDED_FOR"].split(",")):
                    hop = hop.strip()
                    if not _trusted(hop):
                        meta["REMOTE_ADDR"] = hop
                        break
        for header in _FORWARDED:
            meta.pop(header, None)
        return self.get_response(request)


RETRY_AFTER = 5  # seconds: a swap of a database lasts about that long
BEING_RESTORED = "The workspace {name} is being restored: try again in a moment."


def unavailable(request, message: str):
    """503 with Retry-After: JSON on the API, the 503 page elsewhere."""
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": message}, status=503)
    else:
        response = render(request, "503.html", {"message": message}, status=503)
    response["Retry-After"] = str(RETRY_AFTER)
    return response


def not_found(request):
    """The one 404 for hosts we do not serve: same page whatever the reason."""
    return render(request, "404.html", status=404)


class TenantHostMiddleware:
    """Resolve the site once per request from the Host header and bind its database.

    * malformed or foreign host: 404, no database touched at all;
    * unknown or still-provisioning tenant: 404 (one indexed catalog lookup);
    * suspended tenant: 503, its database never opened;
    * ``console.<domain>``: the platform's own pages, bound to the catalog.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.tenant = None
        site = classify_host(request.META.get("HTTP_HOST", ""))
        if site is None:
            return not_found(request)
        if site.kind == CONSOLE:
            request.urlconf = "oxygis.urls_console"
            with using_database(CATALOG):
                return self.get_response(request)
        tenant = (
            Tenant.objects.select_related("database_server")
            .filter(slug=site.slug, state__in=Tenant.EXISTING)
            .first()
        )
        if tenant is None:
            return not_found(request)
        if tenant.state == Tenant.SUSPENDED:
            return unavailable(
                request,
                f"The workspace {tenant.name} is suspended. Its administrator can contact "
                "Oxygis support to restore access.",
            )
        if tenant.state == Tenant.MAINTENANCE:
            return unavailable(request, BEING_RESTORED.format(name=tenant.name))
        request.tenant = tenant
        try:
            with tenant_context(tenant):
                return self.get_response(request)
        except TenantBusy:
            # A restore is swapping its database: a moment, not an error.
            return unavailable(request, BEING_RESTORED.format(name=tenant.name))
