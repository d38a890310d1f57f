"""Request-level tenancy: trusted proxies, then host -> tenant -> bound database."""

from __future__ import annotations

from django.shortcuts import render

from oxygis.core.addresses import is_trusted_proxy, real_client
from oxygis.core.responses import unavailable

from .context import CATALOG, release_catalog, using_database
from .databases import release_tenant_connections, tenant_context
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
        if is_trusted_proxy(meta.get("REMOTE_ADDR", "")):
            if meta.get("HTTP_X_FORWARDED_HOST"):
                meta["HTTP_HOST"] = _last(meta["HTTP_X_FORWARDED_HOST"])
            if meta.get("HTTP_X_FORWARDED_PROTO"):
                proto = _last(meta["HTTP_X_FORWARDED_PROTO"]).lower()
                meta["wsgi.url_scheme"] = "https" if proto == "https" else "http"
            meta["REMOTE_ADDR"] = real_client(meta["REMOTE_ADDR"], meta.get("HTTP_X_FORWARDED_FOR"))
        for header in _FORWARDED:
            meta.pop(header, None)
        return self.get_response(request)


BEING_RESTORED = "The workspace {name} is being restored: try again in a moment."


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
        request.is_console = False
        site = classify_host(request.META.get("HTTP_HOST", ""))
        if site is None:
            return not_found(request)
        if site.kind == CONSOLE:
            request.is_console = True
            request.urlconf = "oxygis.urls_console"
            with using_database(CATALOG):
                return self.get_response(request)
        tenant = (
            Tenant.objects.select_related("database_server")
            .filter(slug=site.slug, state__in=Tenant.SERVED)
            .first()
        )
        # The catalog's connection goes back to the process's budget at once: most
        # requests need nothing more of it (tenancy/pool.py).
        release_catalog()
        if tenant is None:
            return not_found(request)
        if tenant.state == Tenant.SUSPENDED:
            release_tenant_connections(tenant)
            return unavailable(
                request,
                f"The workspace {tenant.name} is suspended. Its administrator can contact "
                "Oxygis support to restore access.",
            )
        if tenant.state in (Tenant.MAINTENANCE, Tenant.RECOVERING):
            return unavailable(request, BEING_RESTORED.format(name=tenant.name))
        request.tenant = tenant
        try:
            with tenant_context(tenant):
                return self.get_response(request)
        except TenantBusy:
            # A restore is swapping its database: a moment, not an error.
            return unavailable(request, BEING_RESTORED.format(name=tenant.name))
