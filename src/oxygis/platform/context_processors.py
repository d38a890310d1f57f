"""The support banner (C14): every user of a tenant sees who from Oxygis support may be
in their workspace, until when, and for which ticket."""

from __future__ import annotations

from .grants import banner_grants


def support(request):
    tenant = getattr(request, "tenant", None)
    user = getattr(request, "user", None)
    if tenant is None or user is None or not user.is_authenticated:
        return {}
    return {"support_grants": banner_grants(tenant)}
