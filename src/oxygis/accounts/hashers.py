"""C10: PBKDF2-HMAC-SHA512, salted, 600,000 rounds by default (as Odoo); never fewer
than 220,000 (settings refuse it; OWASP's floor for SHA-512 is 210,000).

Threat: sign-in as a CPU lever. A hash costs about a quarter of a second of a core, on
purpose. The shared limiter (core/limiter.py) bounds what one address may make us hash;
this module bounds what everybody together may:

* at most PASSWORD_HASHES_AT_ONCE hashes per process; past that a request waits at
  most PASSWORD_HASH_WAIT seconds for a slot, then gets 503 with Retry-After
  (web/outages.py) instead of queueing behind a flood;
* the hashes run in threads of low scheduling priority (nice 10), so that when they
  compete with pages for the CPU, pages win: a flood of sign-ins from many addresses
  gets the CPU the pages leave, not the pages' share.
"""

import contextlib
import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher

_slots = threading.BoundedSemaphore(settings.PASSWORD_HASHES_AT_ONCE)


def _lower_priority() -> None:
    # Linux: a thread's own nice value (elsewhere the hashes run at the usual priority).
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


_hashers = ThreadPoolExecutor(
    max_workers=settings.PASSWORD_HASHES_AT_ONCE,
    thread_name_prefix="password-hash",
    initializer=_lower_priority,
)


class HashingBusy(RuntimeError):
    """Every hashing slot of this process is taken: try again in a moment."""


@contextmanager
def hashing_slot():
    if not _slots.acquire(timeout=settings.PASSWORD_HASH_WAIT):
        raise HashingBusy("too many passwords are being checked at once")
    try:
        yield
    finally:
        _slots.release()


class PBKDF2SHA512PasswordHasher(PBKDF2PasswordHasher):
    algorithm = "pbkdf2_sha512"
    digest = hashlib.sha512

    @property
    def iterations(self) -> int:
        return settings.PASSWORD_PBKDF2_SHA512_ITERATIONS

    def encode(self, password, salt, iterations=None):
        # verify() hashes through encode() too: every check takes a slot.
        with hashing_slot():
            work = super().encode
            return _hashers.submit(work, password, salt, iterations).result()
