"""Re-authentication ("sudo mode"): sensitive changes need a recent authentication.

Changing the password, the e-mail address, 2FA settings or API keys asks for the
password (or a 2FA code) again when the last authentication is older than
SUDO_TIMEOUT (10 minutes). Threat: a session left open or stolen being used to take
the account over for good.
"""

from __future__ import annotations

import time
from functools import wraps
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import authenticate
from django.shortcuts import redirect

AUTH_AT = "oxygis_auth_at"


def mark_authenticated(request) -> None:
    request.session[AUTH_AT] = int(time.time())


def recently_authenticated(request) -> bool:
    return time.time() - request.session.get(AUTH_AT, 0) <= settings.SUDO_TIMEOUT


def confirm_password(request, password: str) -> bool:
    """Is ``password`` the signed-in user's? Checked as a sign-in is (S12): a failure
    counts toward the account's lockout (django-axes), and a locked-out account is
    refused even with the right password, so a session cannot be used to guess."""
    user = authenticate(request, username=request.user.get_username(), password=password)
    return user is not None and user.pk == request.user.pk


def sudo_required(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not recently_authenticated(request):
            return redirect(f"/accounts/reauth/?{urlencode({'next': request.get_full_path()})}")
        return view(request, *args, **kwargs)

    return wrapper
