"""The access log (C17): one JSON line per request, written with structlog, holding no
secret: who (tenant, user, API key, customer link), from where (the client address after
the trusted-proxy rules), what (method, route, path, status, size, duration) and the
request id also returned as ``X-Request-ID``.

Secrets are kept out by construction: no header but the user agent is read, no body,
no cookie; URL parts that carry credentials (reset and invitation tokens, customer link
tokens, any unknown query value) are replaced by ``[redacted]``.

Destination: stdout, or with OXYGIS_ACCESS_LOG_FILE daily files beside that path
(``access.log`` -> ``access.2026-12-06.log``), opened in append mode by every process (a
line is one ``write``: lines of concurrent processes never interleave). The worker
deletes files older than OXYGIS_ACCESS_LOG_RETENTION_DAYS (``prune_files``).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import structlog
from django.conf import settings
from django.utils.functional import SimpleLazyObject, empty

from oxygis.core.addresses import is_trusted_proxy

log = logging.getLogger("oxygis.audit")

REDACTED = "[redacted]"
# URL keyword arguments that carry a credential (password reset, invitations).
SECRET_KWARGS = frozenset({"uidb64", "token"})
# Query parameters whose values are never secret: searches, sorting, paging, filters.
SAFE_QUERY_KEYS = frozenset(
    {"q", "sort", "page", "state", "limit", "offset", "product_q", "customer_q", "action"}
    | {"actor", "since", "until", "format"}
)
# A path segment that looks like a token (long, letters and digits): redacted even when
# the URL did not resolve, so that a mistyped reset link leaks nothing either.
TOKEN_SEGMENT = re.compile(r"^(?=.*\d)(?=.*[A-Za-z])[A-Za-z0-9_\-:.=]{20,}$")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


# --- where the lines go --------------------------------------------------------------
def daily_path(base: Path, day: date) -> Path:
    return base.with_name(f"{base.stem}.{day:%Y-%m-%d}{base.suffix}")


def log_files(base: Path) -> list[tuple[date, Path]]:
    """The daily files of ``base``, oldest first."""
    found = []
    for path in base.parent.glob(f"{base.stem}.*{base.suffix}"):
        stamp = path.name[len(base.stem) + 1 : len(path.name) - len(base.suffix) or None]
        try:
            found.append((date.fromisoformat(stamp), path))
        except ValueError:
            continue
    return sorted(found)


class DailyFile:
    """A file-like sink that writes each line to the file of its UTC day."""

    def __init__(self, base: Path):
        self.base = base
        self._day: date | None = None
        self._handle = None
        self._lock = threading.Lock()

    def write(self, text: str) -> None:
        today = datetime.now(UTC).date()
        with self._lock:
            if today != self._day:
                if self._handle is not None:
                    self._handle.close()
                self.base.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(
                    daily_path(self.base, today), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640
                )
                self._handle = os.fdopen(fd, "a", buffering=1, encoding="utf-8")
                self._day = today
            self._handle.write(text)

    def flush(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.flush()


_logger = None


def access_logger():
    """The structlog logger of the access log (configured once per process)."""
    global _logger
    if _logger is None:
        sink = DailyFile(Path(settings.ACCESS_LOG_FILE)) if settings.ACCESS_LOG_FILE else sys.stdout
        _logger = structlog.wrap_logger(
            structlog.WriteLogger(sink),
            processors=[
                structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
                structlog.processors.JSONRenderer(sort_keys=False),
            ],
        )
    return _logger


def reset_logger() -> None:
    """Forget the configured destination (tests change OXYGIS_ACCESS_LOG_FILE)."""
    global _logger
    _logger = None


# --- what a line holds ---------------------------------------------------------------
def redacted_path(request) -> str:
    path = request.path
    match = getattr(request, "resolver_match", None)
    if match is not None:
        for name, value in match.kwargs.items():
            if name in SECRET_KWARGS and str(value):
                path = path.replace(f"/{value}", f"/{REDACTED}")
    return "/".join(REDACTED if TOKEN_SEGMENT.match(part) else part for part in path.split("/"))


def redacted_query(query_string: str) -> str:
    pairs = parse_qsl(query_string, keep_blank_values=True)
    return urlencode(
        [(key, value if key in SAFE_QUERY_KEYS else REDACTED) for key, value in pairs],
        safe="[]",
    )


def _user(request):
    """The signed-in user, without loading one (the tenant's database may be closed by
    now): only what authentication already found."""
    user = request.__dict__.get("user")
    if isinstance(user, SimpleLazyObject):
        user = None if user._wrapped is empty else user._wrapped
    if user is not None and getattr(user, "is_authenticated", False):
        return user
    return None


def note(request, **fields) -> None:
    """Add who-fields found deeper in the stack (the API key, the customer link)."""
    notes = getattr(request, "access_notes", None)
    if notes is not None:
        notes.update(fields)


def request_id_for(request) -> str:
    # A request id from a trusted proxy carries on its trace; any other is ours.
    given = request.META.get("HTTP_X_REQUEST_ID", "")
    if given and REQUEST_ID.match(given) and is_trusted_proxy(request.META.get("REMOTE_ADDR", "")):
        return given
    return secrets.token_hex(12)


class AccessLogMiddleware:
    """Outermost middleware: every answer, whoever gave it, is logged once."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.monotonic()
        request.request_id = request_id_for(request)
        request.access_notes = {}
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        try:
            write_line(request, response, time.monotonic() - started)
        except Exception as exc:  # never fail a request over its log line
            log.error("access log line not written: %s", exc)
        return response


def write_line(request, response, seconds: float) -> None:
    tenant = getattr(request, "tenant", None)
    user = _user(request)
    match = getattr(request, "resolver_match", None)
    size = response.get("Content-Length")
    if size is None and not getattr(response, "streaming", False):
        size = len(response.content)
    fields = {
        "request_id": request.request_id,
        "tenant": tenant.slug if tenant is not None else None,
        "host": request.META.get("HTTP_HOST", "")[:100],
        "user_id": user.pk if user is not None else None,
        "user": user.get_username() if user is not None else None,
        **request.access_notes,
        "ip": request.META.get("REMOTE_ADDR") or None,
        "method": request.method,
        "route": match.view_name if match is not None else None,
        "path": redacted_path(request),
        "query": redacted_query(request.META.get("QUERY_STRING", "")) or None,
        "status": response.status_code,
        "duration_ms": round(seconds * 1000, 1),
        "bytes": int(size) if size is not None else None,
        "user_agent": request.META.get("HTTP_USER_AGENT", "")[:200] or None,
    }
    access_logger().info("request", **fields)


# --- retention -----------------------------------------------------------------------
def prune_files(now: datetime | None = None) -> int:
    """Delete the daily files older than the retention period; returns how many."""
    if not settings.ACCESS_LOG_FILE:
        return 0
    today = (now or datetime.now(UTC)).date()
    oldest = today - timedelta(days=settings.ACCESS_LOG_RETENTION_DAYS)
    gone = 0
    for day, path in log_files(Path(settings.ACCESS_LOG_FILE)):
        if day < oldest:
            path.unlink(missing_ok=True)
            gone += 1
    return gone
