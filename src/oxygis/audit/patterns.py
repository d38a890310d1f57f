"""Suspicious patterns in the audit trail (C17): many failed sign-ins in one tenant, many
refusals of existing objects to one actor (someone probing other people's URLs).

Counted with the one rate limiter (core/limiter.py): each such event takes a token from
the bucket of its tenant or actor, which refills over an hour; an empty bucket means the
hourly threshold is passed, and ``suspicious`` is sent (backups/alerts.py turns it into
an alert, once per key, e-mailed to the operators).
"""

from __future__ import annotations

from django.conf import settings
from django.dispatch import Signal

from oxygis.core import limiter
from oxygis.tenancy.context import bound_tenant

# Sent with ``key`` (stable per pattern and subject) and ``message``.
suspicious = Signal()

HOUR = 3600.0
FAILED_SIGNINS = limiter.Rate(
    "audit-failed-signins", burst=settings.ALERT_FAILED_SIGNINS_PER_HOUR, refill=HOUR
)
REFUSALS = limiter.Rate("audit-refusals", burst=settings.ALERT_REFUSALS_PER_HOUR, refill=HOUR)


def _where() -> str:
    tenant = bound_tenant()
    return f"tenant {tenant.slug}" if tenant is not None else "the console"


def observe(event) -> None:
    """Count ``event`` towards its pattern, if it belongs to one."""
    where = _where()
    if event.action == "login.failure":
        rate, subject = FAILED_SIGNINS, where
        key = f"suspicious-signins:{where}"
        message = (
            f"more than {settings.ALERT_FAILED_SIGNINS_PER_HOUR} failed sign-ins within an "
            f"hour in {where} (last: {event.target or event.actor or '?'} from {event.ip})"
        )
    elif event.action == "access.refused":
        who = event.actor or f"an anonymous client at {event.ip}"
        rate, subject = REFUSALS, f"{where}:{event.actor_id or event.ip}"
        key = f"suspicious-refusals:{subject}"
        message = (
            f"{who} in {where} was refused more than {settings.ALERT_REFUSALS_PER_HOUR} "
            f"existing objects within an hour (last: {event.target})"
        )
    else:
        return
    try:
        limiter.take(rate, subject)
    except limiter.RateLimited:
        suspicious.send(sender=observe, key=key, message=message)
