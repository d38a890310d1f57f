"""Temporary failures answered as such: 503 with Retry-After, one log line per episode.

Threat and nuisance both: while a database is out of reach, every request used to
answer an HTML 500 and log a traceback (about 140 a second). Now a database that cannot
be reached, or every password-hashing slot taken (accounts/hashers.py), gives the 503
page (JSON ``{"detail": ...}`` on the API); the first refusal of an episode is logged
with its reason, the others are counted, and the first good answer after it logs the
end of the episode. Nothing restarts: the next request simply tries again.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
import threading
import time

from django.db import InterfaceError, OperationalError

from oxygis.accounts.hashers import HashingBusy
from oxygis.core.responses import unavailable
from oxygis.tenancy.guard import TenantBusy
from oxygis.tenancy.pool import PoolExhausted

log = logging.getLogger("oxygis.outages")

DATABASE, HASHING, SWAPPING = "database", "password hashing", "restore"
MESSAGES = {
    DATABASE: "Oxygis cannot reach its database just now: try again in a moment.",
    HASHING: "Oxygis is very busy checking passwords just now: try again in a moment.",
    SWAPPING: "This workspace is being restored: try again in a moment.",
}
RETRY_AFTER = {DATABASE: 5, HASHING: 2, SWAPPING: 5}
# SQLite's errors that mean "not now" (the others, such as a missing table, are bugs).
_SQLITE_OUTAGES = (
    "unable to open database file",
    "database is locked",
    "disk i/o error",
    "database or disk is full",
)


def temporary_kind(exc: BaseException | None) -> str | None:
    """DATABASE, HASHING, SWAPPING, or None for an error that is not a passing
    condition."""
    if isinstance(exc, HashingBusy):
        return HASHING
    if isinstance(exc, TenantBusy):
        return SWAPPING
    if isinstance(exc, PoolExhausted):
        return DATABASE
    if isinstance(exc, InterfaceError):
        return DATABASE
    if isinstance(exc, OperationalError):
        cause = exc.__cause__
        if isinstance(cause, sqlite3.OperationalError):
            text = str(cause).lower()
            return DATABASE if any(m in text for m in _SQLITE_OUTAGES) else None
        return DATABASE  # PostgreSQL: OperationalError is the connection's, not the SQL's
    return None


class Episodes:
    """What is out right now in this process, since when, and how many refusals."""

    def __init__(self):
        self._lock = threading.Lock()
        self.active: dict[str, list] = {}

    def refused(self, kind: str, exc: BaseException) -> None:
        with self._lock:
            episode = self.active.get(kind)
            if episode is None:
                self.active[kind] = [time.monotonic(), 1]
                text = str(exc).strip().splitlines()
                log.error(
                    "%s unavailable (%s: %s): answering 503 until it is back",
                    kind,
                    type(exc).__name__,
                    text[-1] if text else "",
                )
            else:
                episode[1] += 1

    def recovered(self) -> None:
        with self._lock:
            for kind, (since, count) in self.active.items():
                log.warning(
                    "%s available again after %.0f s; %d request(s) were answered 503",
                    kind,
                    time.monotonic() - since,
                    count,
                )
            self.active.clear()


episodes = Episodes()


def server_error(request):
    """handler500: a passing condition is a 503, logged once per episode; anything else
    the plain 500 page (Django logs it with its traceback)."""
    exc = sys.exc_info()[1]
    kind = temporary_kind(exc)
    if kind is None:
        from django.views.defaults import server_error as plain_500

        return plain_500(request)
    episodes.refused(kind, exc)
    response = unavailable(request, MESSAGES[kind], retry_after=RETRY_AFTER[kind])
    response._has_been_logged = True  # no traceback per request: the episode is logged
    return response


class EpisodeMiddleware:
    """Logs the end of an episode at the first good answer after it (outermost)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if episodes.active and response.status_code < 500:
            episodes.recovered()
        return response
