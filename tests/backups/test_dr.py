"""C7: the platform rebuilt from one backup site and the keys alone (`oxygis dr`).

Each test builds an "old platform" in a data folder (and, on PostgreSQL, databases) of
its own with the real CLI, backs it up to three file sites, then rebuilds it on a "new
machine" (another data folder and catalog, the same keys) and looks at what came back."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.backups.conftest import file_site_urls, site_folder
from tests.conftest import ENGINE, PG_ADMIN_URL, PREFIX, _pg_admin

# Run in a platform's environment: tenants with data, or what a tenant holds.
MAKE_DATA = """
import json, sys, django
django.setup()
from decimal import Decimal
from django.contrib.auth import get_user_model
from oxygis.access.actors import system
from oxygis.sales import services
from oxygis.sales.models import Contact, Product
from oxygis.tenancy.databases import tenant_context
from oxygis.platform.provisioning import provision_tenant
for slug, plan, contacts in json.loads(sys.argv[1]):
    made = provision_tenant(slug, name=slug.title(), plan=plan)
    with tenant_context(made.tenant), system(reason="test data"):
        admin = get_user_model().objects.get(username="admin")
        people = [Contact.objects.create(name=f"{slug} customer {i}") for i in range(contacts)]
        product = Product.objects.create(name="Gadget", sku="G-1", unit_price=Decimal("12.50"))
        services.create_order(customer=people[0], salesperson=admin, lines=[
            services.LineInput("Gadget", Decimal(2), Decimal("12.50"), Decimal("20"), product)])
"""
SHOW = """
import json, django
django.setup()
from oxygis.access.actors import system
from oxygis.sales.models import Contact, Order
from oxygis.tenancy.databases import tenant_context
from oxygis.tenancy.models import Tenant
out = {}
for t in Tenant.objects.order_by("slug"):
    with tenant_context(t), system(reason="test"):
        out[t.slug] = {
            "state": t.state,
            "contacts": sorted(Contact.objects.values_list("name", flat=True)),
            "orders": sorted(Order.objects.values_list("number", flat=True)),
        }
print(json.dumps(out))
"""


class Platform:
    """A data folder (and on PostgreSQL a catalog database and name prefix) run by the
    real CLI in subprocesses."""

    def __init__(
        self,
        root: Path,
        name: str,
        sites: list[str],
        keys: Path | None = None,
        database_url: str | None = None,
    ):
        self.var = root / name
        self.var.mkdir(parents=True)
        if keys is not None:
            shutil.copytree(keys, self.var / "keys")
        stem = f"{PREFIX}{name}{secrets.token_hex(2)}_"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("OXYGIS_")}
        self.env |= {
            "OXYGIS_ENV": "test",
            "OXYGIS_VAR_DIR": str(self.var),
            "OXYGIS_DB_PREFIX": stem,
            "OXYGIS_BACKUP_SITES": ",".join(sites),
        }
        if database_url is not None:
            self.env["OXYGIS_DATABASE_URL"] = database_url
        elif ENGINE == "postgresql":
            with _pg_admin() as conn:
                conn.execute(f'CREATE DATABASE "{stem}catalog"')
            self.env["OXYGIS_DATABASE_URL"] = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{stem}catalog"

    def run(self, *args, check=True, timeout=300) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [sys.executable, "-m", "oxygis.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"oxygis {' '.join(args)}: {done.returncode}\n{done.stderr[-3000:]}"
            )
        return done

    def python(self, code: str, *args) -> str:
        done = subprocess.run(
            [sys.executable, "-c", code, *args],
            env={**self.env, "DJANGO_SETTINGS_MODULE": "oxygis.settings"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    def contents(self) -> dict:
        return json.loads(self.python(SHOW).strip().splitlines()[-1])


@pytest.fixture
def old(tmp_path):
    """An old platform: a paid and a trial tenant, the catalog backed up, then a third
    tenant (known only to the sites' manifests), all backed up to three file sites."""
    sites = file_site_urls(tmp_path / "sites")
    platform = Platform(tmp_path, "old", sites)
    platform.run("migrate", "--verbosity", "0")
    platform.python(MAKE_DATA, json.dumps([["acme", "paid", 3], ["tryit", "trial", 2]]))
    platform.run("backup", "run", "--all")
    platform.python(MAKE_DATA, json.dumps([["latecomer", "freemium", 1]]))
    platform.run("backup", "run", "--tenant", "latecomer")
    platform.sites = sites
    platform.before = platform.contents()
    return platform


def _new_machine(tmp_path, old) -> Platform:
    return Platform(tmp_path, "new", old.sites, keys=old.var / "keys")


def test_rebuild_brings_every_tenant_back_with_rpo_and_rto(tmp_path, old):
    """C7: from one site and the keys, one command restores the catalog, merges what it
    did not know (a tenant and backups made after the catalog backup), restores every
    tenant paid first, and reports each one's RPO and RTO against its plan."""
    new = _new_machine(tmp_path, old)
    done = new.run("dr", "rebuild", "--from-site", old.sites[1], "--jobs", "2")
    report = done.stdout
    assert "catalog from backup" in report
    # The tenant made after the catalog backup, and the backups taken after it.
    assert int(re.search(r"(\d+) backups merged", report).group(1)) >= 1
    lines = {line.split()[0]: line for line in report.splitlines()[2:]}
    assert set(lines) == {"acme", "tryit", "latecomer"}
    assert all(" done " in line and "missed" not in line for line in lines.values())
    assert "24 h / 24 h" in lines["acme"] and "24 h / 48 h" in lines["tryit"]
    assert report.index("acme") < report.index("tryit") < report.index("latecomer")
    assert new.contents() == old.before  # every contact and order, the states too
    status = new.run("dr", "status")
    assert status.stdout.splitlines()[2:] == report.splitlines()[2:]
    # The rebuilt platform backs up as usual: its first catalog backup keeps the one it
    # came from (found whole on the sites, not "interrupted").
    new.run("backup", "run", "--catalog")
    listing = new.run("backup", "list", "--catalog").stdout
    assert listing.count(" good ") >= 2 and "failed" not in listing


def test_a_forged_manifest_is_refused_and_an_unreadable_catalog_is_rebuilt(tmp_path, old):
    """C7, C3: a manifest whose signature does not check is refused (counted, never
    trusted); with every catalog backup unreadable, the tenant index is rebuilt from
    the signed manifests and every tenant still comes back."""
    site = site_folder(old.sites[0])
    forged = site / secrets.token_hex(16) / secrets.token_hex(16)
    forged.mkdir(parents=True)
    (forged / "manifest.json").write_text(
        json.dumps({"manifest": {"format": "oxygis-backup/1"}, "signature": "AAAA", "key": "x"})
    )
    for dump in (site / "catalog").glob("*/dump.age"):
        dump.write_bytes(b"not an age file")
    new = _new_machine(tmp_path, old)
    report = new.run("dr", "rebuild", "--from-site", old.sites[0]).stdout
    assert "rebuilt from manifests" in report and "1 manifests refused" in report
    after = new.contents()
    assert {slug: t["contacts"] for slug, t in after.items()} == {
        slug: t["contacts"] for slug, t in old.before.items()
    }


def test_a_site_gone_is_refused_and_a_site_losing_a_backup_is_finished_from_another(tmp_path, old):
    """C7: a site that is gone: refused in one line, nothing changed. A site that lost one
    tenant's backups: that tenant fails (said, exit 2), the others come back, and the
    same rebuild continued from another site brings it back too."""
    new = _new_machine(tmp_path, old)
    gone = tmp_path / "gone"
    refused = new.run("dr", "rebuild", "--from-site", gone.as_uri(), check=False)
    assert refused.returncode == 2 and "holds no backup" in refused.stderr
    assert "Traceback" not in refused.stderr  # and nothing changed: the next run starts
    site = site_folder(old.sites[1])
    # The site loses every dump of one tenant (its manifests stay: it is still listed).
    manifests = {
        path.parent: json.loads(path.read_text())["manifest"]
        for path in site.glob("*/*/manifest.json")
    }
    lost = [f for f, m in manifests.items() if (m.get("tenant") or {}).get("slug") == "tryit"]
    assert lost, manifests
    for folder in lost:
        (folder / "dump.age").unlink()
    first = new.run("dr", "rebuild", "--from-site", old.sites[1], check=False)
    assert first.returncode == 2, first.stdout
    rows = {line.split()[0]: line.split()[2] for line in first.stdout.splitlines()[2:]}
    assert rows == {"acme": "done", "latecomer": "done", "tryit": "failed"}, first.stdout
    new.run("dr", "rebuild", "--from-site", old.sites[2])
    assert new.contents() == old.before


def test_a_killed_rebuild_continues_where_it_stopped(tmp_path, old):
    """C7: kill -9 in the middle of a rebuild, run the same command again: the tenants
    already back stay, the others come back, nothing is restored twice over a served one."""
    new = _new_machine(tmp_path, old)
    command = [
        sys.executable,
        "-m",
        "oxygis.cli",
        "dr",
        "rebuild",
        "--from-site",
        old.sites[2],
        "--jobs",
        "1",
    ]
    proc = subprocess.Popen(command, env=new.env, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:
            if "acme (paid): back" in line:
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    again = new.run("dr", "rebuild", "--from-site", old.sites[2])
    assert "continuing the rebuild" in again.stderr
    assert new.contents() == old.before


def test_rebuild_without_the_platforms_key_recovers_nothing_and_says_so(tmp_path, old):
    """C7, fail closed: a new machine with other keys (or a wrong site) finds no manifest
    it can trust: exit 2 and one line, not an empty platform reported as recovered."""
    new = Platform(tmp_path, "stranger", old.sites)
    done = new.run("dr", "rebuild", "--from-site", old.sites[0], check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "no backup whose manifest checks" in done.stderr
    assert "(4 refused" in done.stderr


def test_rebuild_refuses_a_platform_that_has_tenants(tmp_path, old):
    """C7, fail closed: over a catalog that holds tenants, dr rebuild changes nothing."""
    done = old.run("dr", "rebuild", "--from-site", old.sites[0], check=False)
    assert done.returncode == 2
    assert "only runs onto an empty platform" in done.stderr
    assert "Traceback" not in done.stderr
    assert old.contents() == old.before


def test_tenants_being_recovered_answer_503(tenant_factory):
    """C7: until a rebuild brings it back, a tenant answers 503 "being recovered", with
    Retry-After, and nothing backs it up meanwhile (no database to dump yet)."""
    from django.test import Client

    from oxygis.backups.service import all_targets
    from oxygis.tenancy.hosts import tenant_host
    from oxygis.tenancy.models import Tenant

    tenant = tenant_factory().tenant
    Tenant.objects.filter(pk=tenant.pk).update(state=Tenant.RECOVERING)
    response = Client().get("/", HTTP_HOST=tenant_host(tenant.slug), secure=True)
    assert response.status_code == 503 and "Retry-After" in response.headers
    assert "being restored" in response.content.decode()
    assert tenant.id.hex not in {t.key for t in all_targets()}


def test_onto_refuses_a_password_on_the_command_line(tmp_path, old):
    """C7, S-secrets: `--onto` never takes a password (the process list and the shell's
    history would show it); refused before anything changes."""
    new = _new_machine(tmp_path, old)
    done = new.run(
        "dr",
        "rebuild",
        "--from-site",
        old.sites[0],
        "--onto",
        "postgresql://admin:hunter2@db.example/postgres",
        check=False,
    )
    assert done.returncode == 2 and "no password on the command line" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout
    assert not (new.var / "dr-rebuild.json").exists()


@pytest.mark.postgresql
def test_rebuild_onto_another_server(tmp_path, old):
    """C7: `--onto` puts the tenants on the named PostgreSQL server, registered in the
    catalog, and they are served from there."""
    new = _new_machine(tmp_path, old)
    onto = PG_ADMIN_URL.rsplit("/", 1)[0].replace("127.0.0.1", "localhost") + "/postgres"
    new.run("dr", "rebuild", "--from-site", old.sites[0], "--onto", onto)
    assert new.contents() == old.before
    servers = new.python(
        "import django; django.setup()\n"
        "from oxygis.tenancy.models import Tenant\n"
        "print(sorted({t.database_server.name for t in Tenant.objects.all()}))"
    )
    assert servers.strip() == "['dr-localhost-5432']"


def test_a_drill_rehearses_the_rebuild_in_a_scratch_place_and_alerts_over_target(old):
    """C7: `oxygis dr drill` rebuilds the catalog and a sample of tenants from a site into
    a scratch place, records the measured RTO against the plans' targets and removes what
    it made, leaving the live platform as it was; a missed target raises an alert, and
    the next drill rehearses the next site."""
    done = old.run("dr", "drill", "--sample", "2")
    assert "within targets" in done.stdout and "2 of 3 tenant(s) restored" in done.stdout
    assert f"from {old.sites[0]}" in done.stdout
    assert old.contents() == old.before
    assert not list((old.var / "scratch").glob("*~drill-*"))
    if ENGINE == "postgresql":
        with _pg_admin() as conn:
            left = conn.execute(
                "SELECT datname FROM pg_database WHERE starts_with(datname, %s)",
                ["oxydrill"],
            ).fetchall()
        assert left == []
    old.python(
        "import django; django.setup()\n"
        "from oxygis.tenancy.models import Plan\n"
        "Plan.objects.update(rto_hours=0)"
    )
    over = old.run("dr", "drill", "--sample", "1", check=False)
    assert over.returncode == 1, over.stderr
    assert "over target" in over.stdout and f"from {old.sites[1]}" in over.stdout
    status = old.run("backup", "status", check=False)
    assert "ALERT" in status.stdout and "DR drill from" in status.stdout
    assert "over target" in old.run("dr", "status", check=False).stdout


def test_a_killed_drill_is_swept_by_the_worker(old):
    """C7: a drill killed mid-way (kill -9 of it and its rebuild): the worker's next pass
    removes its scratch folder (and on PostgreSQL its databases), marks it failed and
    raises the drill alert."""
    process = subprocess.Popen(
        [sys.executable, "-m", "oxygis.cli", "dr", "drill", "--sample", "3"],
        env=old.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the drill and its child, as a service manager kills them
    )
    scratch = old.var / "scratch"

    def rebuild_under_way() -> bool:
        # The rebuild has begun writing its own data folder: killed now, it is mid-way
        # (a fixed delay was too long on a fast machine: the drill had already ended).
        try:
            return any(any(folder.iterdir()) for folder in scratch.glob("*~drill-*"))
        except FileNotFoundError:  # removed as we looked: the drill ended
            return False

    deadline = time.monotonic() + 60
    while not rebuild_under_way() and time.monotonic() < deadline:
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert list(scratch.glob("*~drill-*")), "the drill's folder should be there when killed"
    out = old.python(
        "import django; django.setup()\n"
        "from oxygis.backups.worker import sweep_scratch\n"
        "from oxygis.backups.models import Alert, Drill\n"
        "print(sweep_scratch())\n"
        "print(Drill.objects.get().state, Alert.objects.filter(key='dr-drill').count())"
    )
    assert out.split()[-2:] == ["failed", "1"], out
    assert not list(scratch.glob("*~drill-*"))
    if ENGINE == "postgresql":
        with _pg_admin() as conn:
            left = conn.execute(
                "SELECT datname FROM pg_database WHERE starts_with(datname, 'oxydrill')"
            ).fetchall()
        assert left == []
