"""Audit and session bookkeeping hooked on Django's and django-axes' auth signals."""

from __future__ import annotations

import time

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from oxygis.audit.events import record

from .middleware import LOGIN_AT, SEEN_AT
from .models import UserSession
from .sudo import mark_authenticated


@receiver(user_logged_in)
def on_login(sender, request, user, **kwargs):
    if request is None or not hasattr(request, "session"):
        return
    now = int(time.time())
    request.session[LOGIN_AT] = now
    request.session[SEEN_AT] = now
    mark_authenticated(request)
    UserSession.objects.update_or_create(
        session_key=request.session.session_key,
        defaults={
            "user": user,
            "user_agent": request.headers.get("User-Agent", "")[:300],
            "ip": request.META.get("REMOTE_ADDR") or None,
        },
    )
    record("login.success", request=request, actor=user, target=user.get_username())


@receiver(user_login_failed)
def on_login_failed(sender, credentials, request=None, **kwargs):
    if request is None:
        return
    # Django masks the password in ``credentials``; only the name tried is kept.
    record("login.failure", request=request, target=str(credentials.get("username", ""))[:150])


@receiver(user_logged_out)
def on_logout(sender, request, user, **kwargs):
    if request is None or user is None:
        return
    UserSession.objects.filter(session_key=request.session.session_key).delete()
    record("logout", request=request, actor=user, target=user.get_username())


@receiver(user_locked_out)
def on_locked_out(sender, request, username, ip_address, **kwargs):
    record("login.locked_out", request=request, target=str(username or "")[:150])
