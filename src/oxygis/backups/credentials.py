"""What a restored database may no longer trust (C4, C9).

A restore brings a database back as it was at the backup point: with the sessions that
were open then, the API keys and customer links that were valid then, users who were
active then and passwords as they were then. None of that may come back to life:

* every session ends (the copy's and the live restore's alike);
* what was revoked since the backup point, as recorded in the catalog
  (tenancy.models.CredentialEvent: keys revoked, users deactivated, passwords changed,
  2FA and passkeys removed, links revoked), is revoked again; a changed password cannot be known, so
  the account gets a random one nobody knows and its owner resets it by e-mail;
* a side-by-side copy is a new workspace: it starts with no valid API key and no valid
  customer link at all, and its own signing salt (a new tenant row), so no reset,
  invitation or customer link of the original opens it.

Reset and invitation links used since the backup point need nothing more: using one
changed a password (an event above), and a link is bound to the password hash it was
made for, which the random password replaces.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.sessions.models import Session
from django.db.models import Min, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp_webauthn.models import WebAuthnCredential

from oxygis.accounts.models import ApiKey, UserSession
from oxygis.portal.models import OrderLink
from oxygis.tenancy.databases import open_database
from oxygis.tenancy.models import CredentialEvent, Tenant

log = logging.getLogger("oxygis.backups")

# Catalog events and the backup's snapshot come from different clocks and transactions:
# events this long before the backup started are applied again too (all are idempotent).
MARGIN = timedelta(minutes=10)


def _latest_per_subject(events, kinds) -> dict[str, str]:
    latest: dict[str, str] = {}
    for event in events:
        if event.kind in kinds:
            latest[event.subject] = event.kind  # events come oldest first
    return latest


def distrust(entry: dict, source: Tenant, since: datetime, *, fresh_copy: bool) -> dict:
    """Make the restored database behind ``entry`` forget every credential that ended
    after ``since`` for ``source`` (the tenant whose backup it is); with ``fresh_copy``,
    every API key and customer link too. Returns counts, for the audit trail."""
    events = list(
        CredentialEvent.objects.filter(tenant=source, at__gte=since - MARGIN).order_by("at", "pk")
    )
    now = timezone.now()
    User = get_user_model()
    with open_database(entry, prefix="restored"):
        counts = {"sessions": Session.objects.all().delete()[0]}
        UserSession.objects.all().delete()
        if fresh_copy:
            keys = ApiKey.objects.filter(revoked_at__isnull=True)
            links = OrderLink.objects.filter(revoked_at__isnull=True)
        else:
            keys = ApiKey.objects.filter(
                revoked_at__isnull=True,
                prefix__in=[e.subject for e in events if e.kind == CredentialEvent.APIKEY_REVOKED],
            )
            links = OrderLink.objects.filter(
                revoked_at__isnull=True,
                token_digest__in=[
                    e.subject for e in events if e.kind == CredentialEvent.LINK_REVOKED
                ],
            )
        counts["api_keys"] = keys.update(revoked_at=now)
        counts["links"] = links.update(revoked_at=now)
        activity = _latest_per_subject(
            events, {CredentialEvent.USER_DEACTIVATED, CredentialEvent.USER_REACTIVATED}
        )
        gone = [int(s) for s, kind in activity.items() if kind == CredentialEvent.USER_DEACTIVATED]
        counts["users_deactivated"] = User.objects.filter(pk__in=gone, is_active=True).update(
            is_active=False
        )
        changed = {int(e.subject) for e in events if e.kind == CredentialEvent.PASSWORD_CHANGED}
        reset = list(User.objects.filter(pk__in=changed))
        for user in reset:
            # A random password nobody knows: the old one no longer opens the account,
            # and its owner can still choose a new one by e-mail (Django sends reset
            # links only to accounts with a usable password).
            User.objects.filter(pk=user.pk).update(
                password=make_password(secrets.token_urlsafe(32))
            )
        counts["passwords_reset"] = len(reset)
        no_2fa = {int(e.subject) for e in events if e.kind == CredentialEvent.TWOFACTOR_REMOVED}
        counts["two_factor_removed"] = (
            TOTPDevice.objects.filter(user_id__in=no_2fa).delete()[0]
            + StaticDevice.objects.filter(user_id__in=no_2fa).delete()[0]
        )
        counts["passkeys_removed"] = WebAuthnCredential.objects.filter(
            credential_id_sha256__in=[
                e.subject for e in events if e.kind == CredentialEvent.PASSKEY_REMOVED
            ]
        ).delete()[0]
    log.info("restored database of %s made to forget: %s", source.slug, counts)
    return counts


def prune_events(now: datetime | None = None) -> int:
    """Delete the events no restore can need: older than every backup of their tenant
    that is, or may become, restorable (and than now, for a tenant with none)."""
    from .models import Backup

    now = now or timezone.now()
    # One statement whatever the number of tenants: each event is compared with the
    # oldest backup of its own tenant that may still be restored.
    oldest = (
        Backup.objects.filter(tenant_id=OuterRef("tenant_id"))
        .exclude(state=Backup.FAILED)
        .order_by()
        .values("tenant_id")
        .annotate(first=Min("started_at"))
        .values("first")
    )
    keep_from = Coalesce(Subquery(oldest), Value(now)) - Value(MARGIN)
    return CredentialEvent.objects.filter(at__lt=keep_from).delete()[0]
