"""Alerts (C8): to the log, to OXYGIS_OPS_EMAIL, and as rows the console lists.

An alert is raised once per condition (its key) and stays open, without repeating the
e-mail, until the condition clears.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from oxygis.core.text import header_safe
from oxygis.tenancy.context import CATALOG

from .models import Alert

log = logging.getLogger("oxygis.backups.alerts")


def raise_alert(key: str, message: str) -> Alert:
    now = timezone.now()
    existing = Alert.objects.filter(key=key, resolved_at__isnull=True).first()
    if existing is not None:
        Alert.objects.filter(pk=existing.pk).update(last_seen_at=now, message=message)
        return existing
    try:
        with transaction.atomic(using=CATALOG):
            alert = Alert.objects.create(key=key, message=message, raised_at=now, last_seen_at=now)
    except IntegrityError:  # raised by another worker at the same moment
        return Alert.objects.get(key=key, resolved_at__isnull=True)
    log.error("ALERT %s: %s", key, message)
    if settings.OPS_EMAIL:
        try:
            send_mail(
                header_safe(f"[Oxygis alert] {message[:150]}"),
                f"{message}\n\nAlert key: {key}\nRaised at: {now:%Y-%m-%d %H:%M:%S} UTC\n",
                settings.DEFAULT_FROM_EMAIL,
                [settings.OPS_EMAIL],
            )
        except Exception as exc:  # the alert is recorded and logged even if mail is down
            log.error("could not e-mail alert %s to %s: %s", key, settings.OPS_EMAIL, exc)
    return alert


def resolve_alert(key: str) -> None:
    resolved = Alert.objects.filter(key=key, resolved_at__isnull=True).update(
        resolved_at=timezone.now()
    )
    if resolved:
        log.info("alert resolved: %s", key)


def open_alerts():
    return Alert.objects.filter(resolved_at__isnull=True)


def acknowledge(alert: Alert, by: str) -> bool:
    """Someone is on it: the alert stays open (and listed) until it clears."""
    return bool(
        Alert.objects.filter(
            pk=alert.pk, resolved_at__isnull=True, acknowledged_at__isnull=True
        ).update(acknowledged_at=timezone.now(), acknowledged_by=by[:200])
    )


def resolve_by_hand(alert: Alert, by: str) -> bool:
    """Closed by a person; raised again (a new alert, a new e-mail) if the condition
    is still there at the next check."""
    done = Alert.objects.filter(pk=alert.pk, resolved_at__isnull=True).update(
        resolved_at=timezone.now(), resolved_by=by[:200]
    )
    if done:
        log.info("alert %s resolved by %s", alert.key, by)
    return bool(done)


def resolve_alerts_about(backup_id_hex: str) -> int:
    """Resolve the alerts about one backup (its copies): it was pruned, the condition is
    gone with it."""
    resolved = Alert.objects.filter(key__contains=backup_id_hex, resolved_at__isnull=True).update(
        resolved_at=timezone.now()
    )
    if resolved:
        log.info("%d alert(s) about pruned backup %s resolved", resolved, backup_id_hex[:12])
    return resolved


def alert_on_suspicion(sender, *, key: str, message: str, **_) -> None:
    """A suspicious pattern in an audit trail (audit/patterns.py) is an alert like any
    other; it must never break the request that revealed it."""
    try:
        raise_alert(key, message)
    except Exception as exc:
        log.error("could not raise alert %s: %s", key, exc)


QUIET_AFTER = timedelta(hours=1)


def resolve_quiet_suspicions(now=None) -> int:
    """A suspicious pattern not seen again for an hour is over."""
    now = now or timezone.now()
    quiet = Alert.objects.filter(
        resolved_at__isnull=True,
        key__startswith="suspicious-",
        last_seen_at__lt=now - QUIET_AFTER,
    )
    return quiet.update(resolved_at=now)
