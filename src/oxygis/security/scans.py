"""The daily security scan (S11): the worker checks every kind of host it serves.

Once every ``SECURITY_SCAN_EVERY_HOURS`` (a slot; the first worker to claim it runs it):
the server's own checks (deployment, data folder, dependency audit, after refreshing
the advisory database when the network allows), then the headers and TLS of a tenant's
site, the console and the customer portal, at their public addresses. Each kind with
findings raises an alert (C8: log, e-mail, console) that clears at the first clean scan.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from oxygis.backups.alerts import raise_alert, resolve_alert
from oxygis.tenancy.context import CATALOG
from oxygis.tenancy.hosts import site_url
from oxygis.tenancy.models import Tenant

from . import advisories
from .models import ScanResult, ScanRun
from .selfcheck import _quiet, run_check

log = logging.getLogger("oxygis.security.scans")

KEEP_RUNS_FOR = timedelta(days=90)
ALERT_PREFIX = "security-scan:"
REFRESH_ADVISORIES_AFTER = timedelta(hours=20)


def scanned_addresses() -> dict[str, str | None]:
    """kind -> the public address the scan fetches (None: nothing of that kind yet)."""
    tenant = (
        Tenant.objects.using(CATALOG)
        .filter(state=Tenant.ACTIVE)
        .order_by("created_at", "slug")
        .only("slug")
        .first()
    )
    return {
        ScanResult.TENANT: site_url(tenant.slug, "/accounts/login/") if tenant else None,
        ScanResult.CONSOLE: site_url(None, "/accounts/login/"),
        ScanResult.PORTAL: site_url(tenant.slug, "/portal/order/") if tenant else None,
    }


def _slot(now: datetime) -> datetime:
    every = settings.SECURITY_SCAN_EVERY_HOURS * 3600
    epoch = int(now.timestamp())
    return datetime.fromtimestamp(epoch - epoch % every, tz=now.tzinfo or timezone.utc)


def _refresh_advisories(now: datetime, progress) -> None:
    if not settings.SECURITY_ADVISORIES_ONLINE:
        return
    status = advisories.status()
    fetched = status and datetime.fromisoformat(
        status.get("fetched_at", "1970-01-01T00:00:00+00:00")
    )
    if fetched and fetched.tzinfo and now - fetched < REFRESH_ADVISORIES_AFTER:
        return
    try:
        advisories.update(timeout=30, progress=progress)
    except advisories.AdvisoryError as exc:  # offline: the audit says how old its copy is
        log.info("advisory database not refreshed: %s", exc)


def run_scan(
    *, slot: datetime | None = None, requested_by: str = "", progress=_quiet
) -> ScanRun | None:
    """Scan everything now; None if this slot was already claimed by another worker.
    ``progress(text)`` is called as it goes (the worker's heartbeat)."""
    now = timezone.now()
    try:
        with transaction.atomic(using=CATALOG):
            run = ScanRun.objects.create(slot=slot or now, requested_by=requested_by[:200])
    except IntegrityError:
        return None
    _refresh_advisories(now, progress)
    plan = [(ScanResult.SERVER, None, ("deploy", "data", "dependencies"))]
    plan += [(kind, url, ("headers", "tls")) for kind, url in scanned_addresses().items() if url]
    total = 0
    for kind, url, checks in plan:
        try:
            progress(f"security scan: {kind}")
            report = run_check(
                url, connect=settings.SECURITY_SCAN_CONNECT, only=checks, progress=progress
            )
            findings = [{"check": f.check, "message": f.message} for f in report.findings]
            document = report.as_json()
        except Exception as exc:  # one host's failure must not hide the others' results
            log.exception("security scan of %s failed", kind)
            findings = [{"check": "scan", "message": f"the scan failed: {type(exc).__name__}"}]
            document = {}
        headers = document.get("headers") or {}
        ScanResult.objects.create(
            run=run,
            kind=kind,
            url=url or "",
            grade=headers.get("grade", ""),
            score=headers.get("score"),
            findings=findings,
            report=document,
        )
        total += len(findings)
        _alert(kind, url, findings)
    ScanRun.objects.filter(pk=run.pk).update(finished_at=timezone.now(), findings=total)
    ScanRun.objects.filter(started_at__lt=now - KEEP_RUNS_FOR).delete()
    run.refresh_from_db()
    log.info("security scan done: %d finding(s)", total)
    return run


def _alert(kind: str, url: str | None, findings: list[dict]) -> None:
    key = f"{ALERT_PREFIX}{kind}"
    if not findings:
        resolve_alert(key)
        return
    where = url or "the server"
    first = f"{findings[0]['check']}: {findings[0]['message']}"
    more = f" (and {len(findings) - 1} more)" if len(findings) > 1 else ""
    raise_alert(key, f"Security scan of {where}: {len(findings)} finding(s): {first}{more}")


def scan_if_due(now: datetime, progress=_quiet) -> ScanRun | None:
    """The worker's job: the scan of the current slot, once."""
    if not settings.SECURITY_SCAN_EVERY_HOURS:
        return None
    slot = _slot(now)
    if ScanRun.objects.filter(slot=slot).exists():
        return None
    return run_scan(slot=slot, requested_by="worker", progress=progress)
