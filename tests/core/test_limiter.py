"""S12: the one shared limiter (token buckets in the catalog), and its use before any
password is hashed."""

import threading
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from oxygis.accounts import hashers
from oxygis.core import limiter
from oxygis.core.models import RateBucket

RATE = limiter.Rate("test-rate", burst=5, refill=3600)


def test_a_bucket_runs_dry_then_refills():
    """S12: ``burst`` takes pass, the next is refused with a Retry-After; tokens come
    back with time, and a check that succeeded can give its token back."""
    for _ in range(5):
        limiter.take(RATE, "a")
    with pytest.raises(limiter.RateLimited) as refused:
        limiter.take(RATE, "a")
    assert 700 <= refused.value.retry_after <= 721  # one token every 720 s
    limiter.take(RATE, "b")  # another value has its own bucket
    limiter.give_back(RATE, "a")
    limiter.check(RATE, "a")  # a check spends nothing
    limiter.take(RATE, "a")
    with pytest.raises(limiter.RateLimited):
        limiter.check(RATE, "a")
    RateBucket.objects.update(updated_at=timezone.now() - timedelta(seconds=1440))
    limiter.take(RATE, "a")
    limiter.take(RATE, "a")
    with pytest.raises(limiter.RateLimited):
        limiter.take(RATE, "a")


def test_full_buckets_are_pruned():
    """S12: a bucket that has refilled says nothing: the worker deletes it."""
    limiter.take(RATE, "old")
    limiter.take(RATE, "new")
    RateBucket.objects.filter(key=limiter._key(RATE, "old")).update(
        full_at=timezone.now() - timedelta(seconds=1)
    )
    assert limiter.prune() == 1
    assert RateBucket.objects.filter(key=limiter._key(RATE, "new")).exists()


def test_concurrent_takes_never_exceed_the_burst():
    """S12: eight threads, each with its own database connection, take 40 tokens from a
    bucket of 5 at once: exactly 5 pass (the row is locked, no lost update)."""
    passed, errors = [], []
    start = threading.Barrier(8)

    def hammer():
        start.wait()
        try:
            for _ in range(5):
                try:
                    limiter.take(RATE, "shared")
                    passed.append(1)
                except limiter.RateLimited:
                    pass
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(passed) == 5


def test_an_address_that_ran_dry_costs_no_password_hash(alpha, monkeypatch):
    """S12: once an address has used its failed checks, its sign-ins are refused (429,
    Retry-After) before the password hasher runs at all: no CPU lever."""
    hashed = []
    for name in ("encode", "verify"):
        original = getattr(hashers.PBKDF2SHA512PasswordHasher, name)

        def counting(self, *args, _original=original, **kwargs):
            hashed.append(1)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(hashers.PBKDF2SHA512PasswordHasher, name, counting)
    client = alpha.client(REMOTE_ADDR="203.0.113.77")
    for i in range(int(limiter.SECRET_CHECKS.burst)):
        client.post("/accounts/login/", {"username": f"nobody{i}", "password": "Xx-123456!"})
    assert hashed
    hashed.clear()
    refused = client.post("/accounts/login/", {"username": "member", "password": "Xx-123456!"})
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert hashed == []
