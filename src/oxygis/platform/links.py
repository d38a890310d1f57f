"""Links that leave the request (e-mails, the hand-off): built from the settings and
the right URL configuration, whichever host the request that makes them came to."""

from __future__ import annotations

from django.urls import reverse

from oxygis.tenancy.hosts import site_url


def tenant_link(slug: str, name: str, **kwargs) -> str:
    return site_url(slug, reverse(name, urlconf="oxygis.urls", kwargs=kwargs or None))


def console_link(name: str, **kwargs) -> str:
    return site_url(None, reverse(name, urlconf="oxygis.urls_console", kwargs=kwargs or None))
