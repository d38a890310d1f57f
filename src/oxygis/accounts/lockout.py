"""django-axes glue: who is the client, what name was tried, what a locked-out user sees."""

from django.shortcuts import render


def client_ip(request) -> str:
    # TrustedProxyMiddleware has already put the real client address here.
    return request.META.get("REMOTE_ADDR", "")


def attempted_username(request, credentials) -> str:
    """Count 'Alice', 'alice' and ' alice ' as the same name."""
    value = (credentials or {}).get("username") or request.POST.get("username", "")
    return value.strip().lower()


def locked_out_response(request, credentials, *args, **kwargs):
    return render(request, "accounts/locked_out.html", status=429)
