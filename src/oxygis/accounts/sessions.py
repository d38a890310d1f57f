"""Browser sessions of a user: list, end one, end all others (and all, on reset)."""

from __future__ import annotations

from importlib import import_module

from django.conf import settings

from .models import UserSession


def _store(key: str):
    return import_module(settings.SESSION_ENGINE).SessionStore(session_key=key)


def end_session(session: UserSession) -> None:
    _store(session.session_key).delete()
    session.delete()


def end_other_sessions(user, keep: str | None = None) -> int:
    """End every session of ``user`` except ``keep``; returns how many ended."""
    ended = 0
    for session in UserSession.objects.filter(user=user).exclude(session_key=keep or ""):
        end_session(session)
        ended += 1
    # Sessions created before the list existed carry no UserSession row; Django's session
    # hash check still refuses them once the password changes.
    return ended


def describe_browser(user_agent: str) -> str:
    """A short human name for a user agent string (best effort, for the list only)."""
    ua = user_agent or ""
    browser = next(
        (
            name
            for token, name in [
                ("Edg/", "Edge"),
                ("Firefox/", "Firefox"),
                ("Chrome/", "Chrome"),
                ("Safari/", "Safari"),
            ]
            if token in ua
        ),
        "Unknown browser",
    )
    system = next(
        (
            name
            for token, name in [
                ("Android", "Android"),
                ("iPhone", "iPhone"),
                ("iPad", "iPad"),
                ("Windows", "Windows"),
                ("Mac OS", "macOS"),
                ("Linux", "Linux"),
            ]
            if token in ua
        ),
        "",
    )
    return f"{browser} on {system}" if system else browser
