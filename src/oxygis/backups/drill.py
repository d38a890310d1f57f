"""Disaster-recovery drills (C7): `oxygis dr rebuild` rehearsed on a schedule.

A drill runs the real rebuild, in a child process, as a new machine would: its own data
folder under the scratch folder, its own catalog (a SQLite file there, or a scratch
database on the catalog's PostgreSQL server) and its own database names (a prefix of
its own), the same sites and keys. It brings back the catalog and a sample of tenants
(one of each plan first), measures how long each took, projects the whole platform's
RTO (catalog + every tenant at the sample's mean pace, ``jobs`` at a time) and compares
both with the plans' RTO targets. Then everything it made is removed. The live platform
is never touched: the child refuses to run over a catalog that is not empty.

An alert (``dr-drill``) is raised when a drill fails or misses a target, resolved by the
next drill that meets them.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import statistics
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS
from django.db.models import Min
from django.utils import timezone

from oxygis.tenancy.databases import default_server
from oxygis.tenancy.dburl import is_postgresql
from oxygis.tenancy.engines import engine_for
from oxygis.tenancy.models import Plan, Tenant

from . import alerts
from .dumps import _HOST as HOST
from .errors import BackupError
from .keys import configured_keys
from .models import CATALOG_TARGET, Backup, Drill
from .sites import one_line

log = logging.getLogger("oxygis.backups")

ALERT = "dr-drill"
DRILL_PREFIX = "oxydrill"


def minutes(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def drill_due(now: datetime | None = None) -> bool:
    """Every OXYGIS_DR_DRILL_DAYS, once the platform has a day of catalog backups."""
    if settings.DR_DRILL_DAYS <= 0:
        return False
    now = now or timezone.now()
    first = Backup.objects.filter(target=CATALOG_TARGET).aggregate(at=Min("started_at"))["at"]
    if first is None or now - first < timedelta(days=1):
        return False
    last = Drill.objects.first()
    return last is None or now - last.started_at >= timedelta(days=settings.DR_DRILL_DAYS)


def next_site() -> str:
    """The site drilled longest ago (never drilled first): each site is rehearsed in turn."""
    last = dict(Drill.objects.order_by("started_at").values_list("site", "started_at"))
    never = timezone.now()
    return min(settings.BACKUP_SITES, key=lambda url: (url in last, last.get(url, never)))


def _scratch_environment(folder: Path, prefix: str) -> tuple[dict, str | None]:
    """The settings of the "new machine": this one's, with its own data folder, catalog
    and database names; the keys handed over by environment, never the command line.
    Returns the environment and the scratch catalog database's name (PostgreSQL)."""
    keys = configured_keys()
    if keys.identity_path is None:
        raise BackupError(
            "a drill restores backups: it needs the private key on this host "
            "(OXYGIS_BACKUP_IDENTITY_FILE)"
        )
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "OXYGIS_DATABASE_URL",
            "OXYGIS_DATABASE_URL_FILE",
            "OXYGIS_DATABASE_POOLER",  # the scratch names are not the pooler's
            "OXYGIS_BACKUP_SIGNING_KEY_FILE",
            "OXYGIS_BACKUP_RECIPIENTS_FILE",
        )
    }
    env |= {
        "OXYGIS_VAR_DIR": str(folder),
        "OXYGIS_DB_PREFIX": prefix,
        "OXYGIS_BACKUP_SITES": ",".join(settings.BACKUP_SITES),
        "OXYGIS_BACKUP_IDENTITY_FILE": str(keys.identity_path),
        "OXYGIS_BACKUP_RECIPIENTS": " ".join(keys.recipients),
        "OXYGIS_BACKUP_SIGNING_KEY": keys.signing_pem,
        "OXYGIS_DR_DRILL_DAYS": "0",
    }
    catalog = settings.DATABASES[DEFAULT_DB_ALIAS]
    if not is_postgresql(catalog):
        return env, None
    name = f"{prefix}catalog"
    engine_for(default_server()).create_named_database(name)
    auth = quote(catalog.get("USER") or "", safe="")
    if catalog.get("PASSWORD"):
        auth += ":" + quote(catalog["PASSWORD"], safe="")
    host = catalog.get("HOST") or "localhost"
    port = catalog.get("PORT") or 5432
    env["OXYGIS_DATABASE_URL"] = f"postgresql://{auth}@{host}:{port}/{name}"
    return env, name


def _run(env: dict, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 # nosec B603 # this interpreter, fixed arguments
        [sys.executable, "-m", "oxygis.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_drill(
    *, site: str | None = None, sample: int | None = None, jobs: int = 2, progress=None
) -> Drill:
    """One drill to its end; the Drill row says how it went (and the alert)."""
    say = progress or (lambda text: None)
    site = site or next_site()
    if site not in settings.BACKUP_SITES:
        raise BackupError(f"{site} is not one of OXYGIS_BACKUP_SITES")
    total = Tenant.objects.filter(state__in=Tenant.EXISTING).count()
    sample = sample or settings.DR_DRILL_SAMPLE
    strictest = Plan.objects.order_by("rto_hours").values_list("rto_hours", flat=True).first()
    run = Drill.objects.create(
        site=site,
        sample=min(sample, total),
        tenants_total=total,
        jobs=jobs,
        target_hours=strictest,
    )
    token = secrets.token_hex(3)
    # Named as every scratch file is (host~pid~...): the worker sweeps it if we are killed.
    folder = Path(settings.BACKUP_SCRATCH_DIR) / f"{HOST}~{os.getpid()}~drill-{token}"
    run.scratch = folder.name
    run.save(update_fields=["scratch"])
    prefix = _prefix(token)
    catalog_name = None
    try:
        folder.mkdir(parents=True, mode=0o700)
        env, catalog_name = _scratch_environment(folder, prefix)
        say(f"drill: rebuilding the catalog and {run.sample} tenant(s) from {site}")
        done = _run(
            env,
            *("dr", "rebuild", "--from-site", site),
            *("--sample", str(max(run.sample, 1)), "--jobs", str(jobs)),
            timeout=settings.DR_DRILL_TIMEOUT_HOURS * 3600,
        )
        shown = _run(env, "dr", "status", "--json", timeout=600)
        report = json.loads(shown.stdout.strip().splitlines()[-1]) if shown.stdout else None
        if report is None:
            raise BackupError(_last_line(done.stderr) or "the rebuild did not start")
        _measure(run, report, done)
    except Exception as exc:
        run.state, run.detail = Drill.FAILED, one_line(exc)[:2000]
    finally:
        _remove(folder, prefix, catalog_name)
        run.finished_at = timezone.now()
        run.save()
    if run.state == Drill.OK:
        alerts.resolve_alert(ALERT)
    else:
        alerts.raise_alert(ALERT, f"DR drill from {site}: {run.detail}")
    log.info("%s", summary(run))
    return run


def _last_line(text: str) -> str:
    lines = [ln for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""


def _measure(run: Drill, report: dict, done: subprocess.CompletedProcess) -> None:
    run.catalog_seconds = report["catalog_seconds"]
    run.report = report["tenants"]
    back = [t for t in report["tenants"] if t["state"] == "done"]
    failed = [t for t in report["tenants"] if t["state"] != "done"]
    if back:
        run.slowest_seconds = max(t["rto_seconds"] for t in back)
        pace = statistics.mean(t["restore_seconds"] for t in back)
        run.projected_seconds = (run.catalog_seconds or 0) + pace * run.tenants_total / run.jobs
    over = [t for t in back if t["rto_seconds"] > t["rto_target_hours"] * 3600]
    projected_over = (
        run.projected_seconds is not None
        and run.target_hours is not None
        and run.projected_seconds > run.target_hours * 3600
    )
    if done.returncode != 0 and not failed:
        run.state, run.detail = Drill.FAILED, _last_line(done.stderr) or "the rebuild failed"
    elif failed:
        run.state = Drill.FAILED
        run.detail = "; ".join(f"{t['slug']}: {t['error'] or t['state']}" for t in failed)
    elif over or projected_over:
        run.state = Drill.OVER
        parts = [
            f"{t['slug']} back in {minutes(t['rto_seconds'])} (target {t['rto_target_hours']} h)"
            for t in over
        ]
        if projected_over:
            parts.append(
                f"the whole platform would take {minutes(run.projected_seconds)} "
                f"(target {run.target_hours} h)"
            )
        run.detail = "over target: " + "; ".join(parts)
    else:
        run.state, run.detail = Drill.OK, ""


def _prefix(token: str) -> str:
    # Short and its own: room for tenant and swap names within PostgreSQL's 63 bytes.
    return f"{DRILL_PREFIX}{token}_"


def sweep_dead(folder: Path) -> None:
    """What a killed drill left (its scratch folder, given by the worker's sweep): the
    folder, its databases and roles, and its row marked failed."""
    token = folder.name.rpartition("~drill-")[2]
    catalog = settings.DATABASES[DEFAULT_DB_ALIAS]
    _remove(folder, _prefix(token), "?" if is_postgresql(catalog) else None)
    Drill.objects.filter(scratch=folder.name, state=Drill.RUNNING).update(
        state=Drill.FAILED,
        finished_at=timezone.now(),
        detail="interrupted: its process stopped; what it made was removed",
    )
    alerts.raise_alert(ALERT, f"DR drill interrupted ({folder.name}): what it made was removed")


def _remove(folder: Path, prefix: str, catalog_name: str | None) -> None:
    """Everything the drill made: its folder, and on PostgreSQL its databases and roles."""
    shutil.rmtree(folder, ignore_errors=True)
    if catalog_name is not None:
        try:
            engine_for(default_server()).drop_prefixed(prefix)
        except Exception as exc:
            log.error("drill: could not drop its scratch databases %s*: %s", prefix, one_line(exc))


def summary(run: Drill) -> str:
    return (
        f"DR drill {run.started_at:%Y-%m-%d %H:%M} UTC from {run.site}: "
        f"{run.get_state_display().lower()}; catalog back in {minutes(run.catalog_seconds)}, "
        f"{len(run.report)} of {run.tenants_total} tenant(s) restored, the slowest in "
        f"{minutes(run.slowest_seconds)}; whole platform projected at "
        f"{minutes(run.projected_seconds)} with {run.jobs} job(s)"
        + (f" (target {run.target_hours} h)" if run.target_hours is not None else "")
        + (f": {run.detail}" if run.detail else "")
    )
