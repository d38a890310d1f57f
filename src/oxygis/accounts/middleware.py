"""Session limits and the two-factor gate."""

from __future__ import annotations

import time
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.shortcuts import redirect
from django.urls import Resolver404, resolve
from django.utils.translation import gettext as _

from .models import UserSession
from .oidc import IDP_VERIFIED
from .twofactor import has_second_factor, two_factor_required

LOGIN_AT, SEEN_AT = "oxygis_login_at", "oxygis_seen_at"
SEEN_RESOLUTION = 60  # seconds: how precisely "last seen" is kept


class SessionActivityMiddleware:
    """End sessions idle for SESSION_IDLE_TIMEOUT or older than SESSION_COOKIE_AGE, on the
    server side (a cookie's own expiry is the browser's to keep or not)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.user.is_authenticated:
            now = int(time.time())
            session = request.session
            login_at, seen_at = session.get(LOGIN_AT, now), session.get(SEEN_AT, now)
            idle, most = session_limits(request)
            if now - seen_at > idle or now - login_at > most:
                logout(request)
                messages.info(request, _("Your session has ended. Please sign in again."))
                return redirect(f"/accounts/login/?{urlencode({'next': request.get_full_path()})}")
            if now - seen_at >= SEEN_RESOLUTION or SEEN_AT not in session:
                session[SEEN_AT] = now
                UserSession.objects.filter(session_key=session.session_key).update(
                    last_seen=time_to_datetime(now)
                )
        return self.get_response(request)


def session_limits(request) -> tuple[int, int]:
    """(idle, absolute) limits in seconds: the console's staff have shorter ones (C14)."""
    if getattr(request, "is_console", False):
        return settings.STAFF_SESSION_IDLE_TIMEOUT, settings.STAFF_SESSION_MAX_AGE
    return settings.SESSION_IDLE_TIMEOUT, settings.SESSION_COOKIE_AGE


def time_to_datetime(seconds: int):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, UTC)


PASSKEY_SIGN_IN = {"credential-authentication-begin", "credential-authentication-complete"}
PASSKEY_ENROL = {"passkeys", "credential-registration-begin", "credential-registration-complete"}
VERIFY_ROUTES = frozenset({"twofactor-verify", "logout", "js-i18n-catalog", *PASSKEY_SIGN_IN})
ENROL_ROUTES = frozenset(
    {"twofactor-setup", "twofactor-qr", "logout", "js-i18n-catalog", *PASSKEY_ENROL}
)


class TwoFactorGateMiddleware:
    """S12: after the password step, a user with 2FA reaches only the code page; a user
    who must enrol reaches only enrolment. Nothing else, not even the home page."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = request.user
        if user.is_authenticated and request.session.get(IDP_VERIFIED):
            # The identity provider's multi-factor sign-in counts as the second factor:
            # the tenant chose so, and the signed ID token said so (accounts/oidc.py).
            user.is_verified = lambda: True
        if user.is_authenticated and not user.is_verified():
            try:
                name = resolve(request.path_info, getattr(request, "urlconf", None)).url_name
            except Resolver404:
                name = None
            target = None
            if has_second_factor(user):
                target = None if name in VERIFY_ROUTES else "/accounts/2fa/verify/"
            elif two_factor_required(request, user):
                # On the console: no page at all before 2FA is enrolled (staff, C14).
                target = None if name in ENROL_ROUTES else "/accounts/2fa/setup/"
            if target:
                if request.method == "GET" and name not in (None, "home"):
                    target += "?" + urlencode({"next": request.get_full_path()})
                return redirect(target)
        return self.get_response(request)
