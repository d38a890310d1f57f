"""Each request's language and time zone.

The language is the signed-in person's own choice, else their company's default (on a
tenant's host), else what the browser asks for (Accept-Language), else English. The time
zone is the person's, else the company's (Europe/Paris by default), else UTC. Django's
LocaleMiddleware does the rest (Content-Language, Vary)."""

from __future__ import annotations

from django.conf import settings
from django.middleware.locale import LocaleMiddleware as DjangoLocaleMiddleware
from django.utils import timezone, translation

from oxygis.core.i18n import supported, valid_zone


def company_of(request):
    """The tenant's company details (read once per request), or None off a tenant host."""
    if getattr(request, "tenant", None) is None:
        return None
    if not hasattr(request, "_company"):
        from oxygis.sales.models import Company

        request._company = Company.current()
    return request._company


def preferences(request) -> tuple[str, str]:
    user = getattr(request, "user", None)
    if getattr(request, "is_console", False):
        # The platform console is for Oxygis staff, in English (their working language);
        # times in the staff member's zone, else UTC.
        zone = valid_zone(getattr(user, "time_zone", "")) if user is not None else None
        return "en", zone or "UTC"
    own_language = own_zone = None
    if user is not None and user.is_authenticated:
        own_language = supported(getattr(user, "language", ""))
        own_zone = valid_zone(getattr(user, "time_zone", ""))
    company = None
    if own_language is None or own_zone is None:
        company = company_of(request)
    language = (
        own_language
        or (supported(company.language) if company else None)
        or translation.get_language_from_request(request)
        or settings.LANGUAGE_CODE
    )
    zone = own_zone or (valid_zone(company.time_zone) if company else None) or "UTC"
    return language, zone


class LocaleMiddleware(DjangoLocaleMiddleware):
    def process_request(self, request):
        language, zone = preferences(request)
        translation.activate(language)
        request.LANGUAGE_CODE = translation.get_language()
        timezone.activate(zone)

    def process_response(self, request, response):
        response = super().process_response(request, response)
        # Nothing carries over to the next request of this thread, or to code that runs
        # outside a request (workers, commands): they use the defaults.
        timezone.deactivate()
        translation.deactivate()
        return response
