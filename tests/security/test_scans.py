"""S11: the worker's daily scan of every kind of host we serve: results kept and listed on
the console, an alert per kind with findings, cleared by the next clean scan; one scan
per slot however many workers try."""

import datetime as dt
import threading
from pathlib import Path

import pytest
from django.db import connections
from django.test import override_settings
from django.utils import timezone

from oxygis.backups.models import Alert
from oxygis.platform.models import StaffMember
from oxygis.security import advisories
from oxygis.security.models import ScanResult, ScanRun
from oxygis.security.scans import run_scan, scan_if_due
from tests.platform.staffing import make_staff
from tests.served import oxygis


@pytest.fixture
def scan_settings(served, ca_file, tmp_path):
    with override_settings(
        PUBLIC_PORT=served.port,
        SECURITY_SCAN_CONNECT="127.0.0.1",
        SECURITY_SCAN_CAFILE=ca_file,
        SECURITY_SCAN_EVERY_HOURS=24,
        SECURITY_ADVISORIES_ONLINE=False,
        SECURITY_ADVISORIES_DIR=Path(tmp_path / "advisories"),
    ):
        yield


def open_alert(kind):
    return Alert.objects.filter(key=f"security-scan:{kind}", resolved_at__isnull=True).first()


def test_the_daily_scan_checks_every_kind_and_alerts_on_findings(scan_settings, alpha):
    """S11: the server (no advisory database yet: a finding, an alert), a tenant's site,
    the portal and the console (A+, no finding, no alert); then, with a fresh database,
    the next scan is clean and the alert clears."""
    now = timezone.now() + dt.timedelta(days=365)  # a slot no other test used
    run = scan_if_due(now)
    assert run is not None and run.finished_at is not None
    results = {r.kind: r for r in run.results.all()}
    assert set(results) == {"server", "tenant", "console", "portal"}
    for kind in ("tenant", "console", "portal"):
        assert results[kind].grade == "A+", results[kind].findings
        assert results[kind].findings == [], results[kind].findings
        assert results[kind].url.startswith("https://") and open_alert(kind) is None
    assert results["console"].url.startswith("https://console.localhost:")
    assert results["portal"].url.endswith("/portal/order/")
    server = results["server"].findings
    assert {"check": "dependencies", "message": server[0]["message"]} in server
    assert "no cached advisory database" in server[0]["message"]
    alert = open_alert("server")
    assert alert is not None and "no cached advisory database" in alert.message
    assert run.findings == len(server)

    assert scan_if_due(now) is None  # this slot is done
    assert ScanRun.objects.filter(slot=run.slot).count() == 1

    export = Path(advisories.folder().parent / "export.zip")
    export.write_bytes(advisories.osv_zip([{"id": "TEST-1", "affected": []}]))
    advisories.import_file(export, as_of=dt.date.today().isoformat())
    clean = scan_if_due(now + dt.timedelta(days=1))
    assert clean.findings == 0, [r.findings for r in clean.results.all()]
    assert open_alert("server") is None
    assert Alert.objects.filter(pk=alert.pk, resolved_at__isnull=False).exists()


def test_two_workers_never_run_the_same_scan(scan_settings):
    """S11: the slot is claimed in the database: of two workers, one scans."""
    slot = timezone.now() + dt.timedelta(days=400)
    outcomes = []

    def worker():
        try:
            outcomes.append(run_scan(slot=slot, requested_by="worker"))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(o is None for o in outcomes) == [False, True]
    assert ScanRun.objects.filter(slot=slot).count() == 1
    assert ScanResult.objects.filter(run__slot=slot).count() == 4


def test_the_console_lists_the_latest_scan_to_those_allowed(scan_settings):
    """S11: security and operations staff see the scan results; support staff do not."""
    run_scan(slot=timezone.now() + dt.timedelta(days=500), requested_by="test")
    security = make_staff(StaffMember.SECURITY).console()
    page = security.get("/security/")
    assert page.status_code == 200
    text = page.content.decode()
    for kind in ("tenant", "console", "portal", "server"):
        assert f'data-kind="{kind}"' in text
    assert "A+ (125)" in text
    assert "Security reports" in text  # the security role tracks reports too
    operations = make_staff(StaffMember.OPERATIONS).console().get("/security/")
    assert operations.status_code == 200 and "Security reports" not in operations.content.decode()
    assert make_staff(StaffMember.SUPPORT).console().get("/security/").status_code == 403


def test_no_scan_when_switched_off(scan_settings):
    """S11: SECURITY_SCAN_EVERY_HOURS=0 (hosts scanned from elsewhere): the worker skips."""
    with override_settings(SECURITY_SCAN_EVERY_HOURS=0):
        assert scan_if_due(timezone.now() + dt.timedelta(days=600)) is None


def test_the_worker_runs_the_scan_as_a_long_job_that_keeps_beating(scan_settings):
    """S11, C8: the scan is the worker's job, given its heartbeat: a scan longer than two
    passes (slow hosts, a slow OSV) is never taken for a hung worker."""
    from oxygis.backups.worker import EXTRA_JOBS

    job, long = EXTRA_JOBS["security scan"]
    assert long
    beats = []
    run = job(timezone.now() + dt.timedelta(days=700), progress=beats.append)
    assert run is not None and run.requested_by == "worker"
    assert {"security scan: server", "security scan: tenant", "security scan: console"} <= set(
        beats
    )
    assert sum(b.startswith("TLS suites of ") for b in beats) >= 3 * 20  # each suite probed
    assert "dependency audit" not in beats  # no database yet: nothing to audit against


def test_an_operator_scans_now_from_the_command_line(served, ca_file, tmp_path):
    """S11: `oxygis security scan` runs the whole scan at once, says which host it is on,
    prints every finding and exits 1 when there is one; `advisories update` without a
    network is one line, exit 2, and only ever fetches over https."""
    env = {
        "OXYGIS_PUBLIC_PORT": str(served.port),
        "OXYGIS_SECURITY_SCAN_CONNECT": "127.0.0.1",
        "OXYGIS_SECURITY_SCAN_CAFILE": ca_file,
        "OXYGIS_SECURITY_ADVISORIES_ONLINE": "false",
        "OXYGIS_SECURITY_ADVISORIES_DIR": str(tmp_path / "advisories"),
    }
    done = oxygis("security", "scan", env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "scanning tenant ..." in done.stderr and "scanning console ..." in done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("server server: ") and "  dependencies: no cached" in lines[1]
    assert any(line.startswith("console A+ https://console.localhost:") for line in lines)
    assert any(line.startswith("tenant A+ https://") for line in lines)
    run = ScanRun.objects.order_by("-started_at").first()
    assert run.requested_by.startswith("operator ")

    offline = oxygis("security", "advisories", "update", env=env)
    assert offline.returncode == 2 and "cannot download https://" in offline.stderr
    assert len(offline.stderr.strip().splitlines()) == 1
    plain = oxygis("security", "advisories", "update", "--from-url", "http://x.example/a.zip")
    assert plain.returncode == 2 and "https only" in plain.stderr
