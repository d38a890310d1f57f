"""One backup or restore per database at a time, across workers and hosts (catalog rows).

A lease is taken by an atomic insert, or by taking over a row that has expired or whose
holder (a process on this host) is gone; it is renewed while the work runs. A process
killed with SIGKILL stops renewing: its lease lapses, nothing it did is marked good.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from oxygis.tenancy.context import CATALOG

from .errors import BackupError
from .models import Lease

TTL = timedelta(seconds=90)
HOST = socket.gethostname()


class LeaseHeld(BackupError):
    pass


class LeaseLost(BackupError):
    pass


def _holder_gone(holder: str) -> bool:
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != HOST or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class LeaseGuard:
    def __init__(self, target: str, what: str):
        self.target = target
        self.what = what
        self.holder = f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._renewed = None

    def acquire(self) -> LeaseGuard:
        now = timezone.now()
        try:
            with transaction.atomic(using=CATALOG):
                Lease.objects.create(target=self.target, holder=self.holder, expires_at=now + TTL)
        except IntegrityError:
            current = Lease.objects.filter(target=self.target).first()
            if current is None:
                return self.acquire()
            if current.expires_at > now and not _holder_gone(current.holder):
                raise LeaseHeld(f"{self.what} is already running ({current.holder})") from None
            taken = Lease.objects.filter(pk=current.pk, holder=current.holder).update(
                holder=self.holder, expires_at=now + TTL
            )
            if not taken:
                raise LeaseHeld(f"{self.what} is already running") from None
        self._renewed = now
        return self

    def renew(self) -> None:
        """Extend the lease (cheap if called often: writes at most every 15 s)."""
        now = timezone.now()
        if self._renewed and now - self._renewed < timedelta(seconds=15):
            return
        if not Lease.objects.filter(target=self.target, holder=self.holder).update(
            expires_at=now + TTL
        ):
            raise LeaseLost(f"{self.what}: another worker took over; stopping")
        self._renewed = now

    def release(self) -> None:
        Lease.objects.filter(target=self.target, holder=self.holder).delete()

    def __enter__(self) -> LeaseGuard:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
