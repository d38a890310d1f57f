"""django-axes glue: who is the client, which account was tried, what a locked-out
client sees."""

from django.contrib.auth import logout
from django.shortcuts import render

from .backends import find_account


def client_ip(request) -> str:
    # TrustedProxyMiddleware has already put the real client address here.
    return request.META.get("REMOTE_ADDR", "")


def attempted_username(request, credentials) -> str:
    """The account tried, whatever names it: 'admin', ' Admin ' and 'admin@acme.example'
    are one lockout key (the account's username). Names of no account count as typed."""
    value = (credentials or {}).get("username") or request.POST.get("username", "")
    account = find_account(value)
    return (account.get_username() if account is not None else value).strip().lower()


def locked_out_response(request, credentials, *args, **kwargs):
    if getattr(request, "user", None) is not None and request.user.is_authenticated:
        # Guessing behind a session (re-authentication, password change): the session
        # is likely not its owner's; it ends here.
        logout(request)
    return render(request, "accounts/locked_out.html", status=429)
