"""The one rate limiter: token buckets in the catalog database, shared by every worker
and host (as healthchecks' TokenBucket, but atomic).

Every endpoint that checks a secret (password, 2FA code, reset or invitation link, API
key, customer link) takes from the client address's bucket *before* the check, so that
guessing, spraying across accounts and floods of costly password hashes all run dry at
the same rate; a check that succeeds gives its token back, so people who type their
password right are never limited. Other rates (reset e-mails per recipient, customer
link sends per order, certificates issued) use the same buckets under other names.

Buckets are rows keyed by a digest of (rate, value); a bucket that has refilled says
nothing and is deleted by the worker (``prune``).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps

from django.conf import settings
from django.db import transaction
from django.http import JsonResponse
from django.shortcuts import render
from django.utils import timezone

from .models import RateBucket

CATALOG = "default"


@dataclass(frozen=True)
class Rate:
    """``burst`` tokens in a full bucket, refilled evenly over ``refill`` seconds."""

    name: str
    burst: float
    refill: float

    @property
    def per_second(self) -> float:
        return self.burst / self.refill


class RateLimited(Exception):
    """The bucket is empty; ``retry_after`` seconds until the next token."""

    def __init__(self, rate: Rate, retry_after: float):
        self.rate = rate
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(f"{rate.name}: try again in {self.retry_after} s")


# Guesses of any secret from one address, all accounts and tenants together (S12).
SECRET_CHECKS = Rate(
    "secret-checks",
    burst=settings.SECRET_CHECKS_BURST,
    refill=3600 * settings.SECRET_CHECKS_BURST / settings.SECRET_CHECKS_PER_HOUR,
)
# Password-reset e-mails to one address: no mail flood through the reset form.
RESET_MAILS = Rate("reset-mails", burst=3, refill=3600)
# Customer-link e-mails for one order (each one also revokes the previous link).
ORDER_MAILS = Rate("order-mails", burst=5, refill=3600)
# New TLS certificates issued by the embedded server, all names together. Only hosts
# of existing tenants get one (made-up names are refused before this), so the rate bounds
# CPU and disk, not guessing: a bucket of 20 a minute handed real tenants created in a
# burst (a busy test run on a shared catalog) the default certificate, i.e. a hostname
# mismatch for their users. 120 at once, 2 a second after: EC keys take milliseconds.
CERTIFICATES = Rate("tls-certificates", burst=120, refill=60)


def _key(rate: Rate, value: str) -> str:
    return hashlib.sha256(f"{rate.name}\0{value}".encode()).hexdigest()


def _level(bucket: RateBucket | None, rate: Rate, now) -> float:
    if bucket is None:
        return float(rate.burst)
    elapsed = max(0.0, (now - bucket.updated_at).total_seconds())
    return min(float(rate.burst), bucket.tokens + elapsed * rate.per_second)


def _change(rate: Rate, value: str, amount: float, *, need: float) -> None:
    """Refill the bucket, then add ``amount`` tokens (negative: spend) if it holds at
    least ``need``; else raise RateLimited. One locked row, one short transaction."""
    key, now = _key(rate, value), timezone.now()
    with transaction.atomic(using=CATALOG):
        bucket = RateBucket.objects.select_for_update().filter(key=key).first()
        if bucket is None:
            # Two first takes at once: the insert of one is ignored, both then lock it.
            RateBucket.objects.bulk_create(
                [RateBucket(key=key, tokens=rate.burst, updated_at=now, full_at=now)],
                ignore_conflicts=True,
            )
            bucket = RateBucket.objects.select_for_update().get(key=key)
        tokens = _level(bucket, rate, now)
        if tokens < need:
            raise RateLimited(rate, (need - tokens) / rate.per_second)
        tokens = min(float(rate.burst), tokens + amount)
        bucket.tokens, bucket.updated_at = tokens, now
        bucket.full_at = now + timedelta(seconds=(rate.burst - tokens) / rate.per_second)
        bucket.save(update_fields=["tokens", "updated_at", "full_at"])


def take(rate: Rate, value: str, cost: float = 1.0) -> None:
    """Spend ``cost`` tokens, or raise RateLimited (nothing spent)."""
    _change(rate, value, -cost, need=cost)


def give_back(rate: Rate, value: str, amount: float = 1.0) -> None:
    """Return tokens spent by a check that succeeded."""
    _change(rate, value, amount, need=-math.inf)


def check(rate: Rate, value: str) -> None:
    """Raise RateLimited if not even one token is left (spends nothing, writes nothing)."""
    now = timezone.now()
    tokens = _level(RateBucket.objects.filter(key=_key(rate, value)).first(), rate, now)
    if tokens < 1:
        raise RateLimited(rate, (1 - tokens) / rate.per_second)


def prune(now=None) -> int:
    """Delete buckets that are full again (the worker's housekeeping)."""
    return RateBucket.objects.filter(full_at__lte=now or timezone.now()).delete()[0]


def client_address(request) -> str:
    # TrustedProxyMiddleware has already put the real client address here.
    return request.META.get("REMOTE_ADDR") or "unknown"


def guards_secrets(view=None, *, methods=("POST",)):
    """For a view whose ``methods`` (POST by default) check a secret: the client address
    pays one token of SECRET_CHECKS before the view runs (so before any hashing), and an
    address that ran dry gets 429. A check that succeeds calls ``secret_was_right`` to
    give it back. ``@guards_secrets(methods=("GET",))`` for a secret in a link (an
    OpenID callback's code)."""

    def decorate(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.method in methods:
                try:
                    # A read first: an address that ran dry is refused without a write.
                    check(SECRET_CHECKS, client_address(request))
                    take(SECRET_CHECKS, client_address(request))
                except RateLimited as exc:
                    return limited_response(request, exc)
            return view(request, *args, **kwargs)

        return wrapper

    return decorate(view) if view is not None else decorate


def secret_was_right(request) -> None:
    give_back(SECRET_CHECKS, client_address(request))


def limited_response(request, exc: RateLimited):
    """429 with Retry-After: JSON on the API, the 429 page elsewhere."""
    if request.path.startswith("/api/"):
        response = JsonResponse(
            {"detail": f"Too many attempts: try again in {exc.retry_after} seconds."},
            status=429,
        )
    else:
        response = render(request, "429.html", {"retry_after": exc.retry_after}, status=429)
    response["Retry-After"] = str(exc.retry_after)
    return response
