"""How the console's and the support pages' actions report: a refusal's one line, or
what was done, as the next page's message."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.contrib import messages

from oxygis.backups.errors import BackupError
from oxygis.tenancy.tenants import TenantError

from .staff import StaffError

REFUSALS = (StaffError, TenantError, BackupError)


@contextmanager
def told(request, done: str) -> Iterator[None]:
    """Run the block; a refusal (one line, safe to show) becomes an error message and
    the page goes on, success becomes ``done``."""
    try:
        yield
    except REFUSALS as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, done)
