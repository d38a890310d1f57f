"""C7: point-in-time recovery on PostgreSQL, with pgBackRest archiving every WAL segment
to the three backup sites (a folder, S3 and Azure, both over TLS).

The tests run a PostgreSQL cluster of their own (initdb, a free loopback port), whose
settings `oxygis pitr setup` changes, an S3 server (moto behind a TLS terminator) and
Azurite with a certificate made here. The platform (catalog and tenants) lives on that
cluster, driven by the real CLI in subprocesses."""

from __future__ import annotations

import datetime as dt
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import obstore
import psycopg
import pytest
from obstore.store import AzureStore, S3Store

from oxygis.web.tls import ensure_local_tls
from tests.backups.conftest import AZ_ACCOUNT, AZ_KEY, AZURITE, create_container
from tests.backups.test_dr import Platform
from tests.served import free_port

pytestmark = pytest.mark.postgresql

OWNER = "postgres"

ADD_CONTACTS = """
import json, sys, django
django.setup()
from oxygis.access.actors import system
from oxygis.sales.models import Contact
from oxygis.tenancy.databases import tenant_context
from oxygis.tenancy.models import Tenant
from oxygis.platform.provisioning import provision_tenant
slug, names = sys.argv[1], json.loads(sys.argv[2])
tenant = Tenant.objects.filter(slug=slug).first()
tenant = tenant or provision_tenant(slug, name=slug, plan="paid").tenant
with tenant_context(tenant), system(reason="test data"):
    for name in names:
        Contact.objects.create(name=name)
"""
SHOW = """
import json, django
django.setup()
from oxygis.access.actors import system
from oxygis.sales.models import Contact
from oxygis.tenancy.databases import tenant_context
from oxygis.tenancy.models import Tenant
out = {}
for t in Tenant.objects.order_by("slug"):
    with tenant_context(t), system(reason="test"):
        out[t.slug] = sorted(Contact.objects.values_list("name", flat=True))
print(json.dumps(out))
"""
CHECK_ARCHIVES = """
import django
django.setup()
from oxygis.backups import pitr
for h in pitr.check_archives():
    print(h.server, int(h.lag_seconds or 0), h.error)
"""


def _tool(name: str) -> str | None:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(found[-1]) if found else None


def _require(*tools) -> None:
    missing = [t for t in tools if shutil.which(t) is None and _tool(t) is None]
    if missing:
        message = f"{', '.join(missing)} not installed: run scripts/ensure-pgbackrest"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true: the point-in-time tests must run)")
        pytest.skip(message)


def _as_owner(*argv, check=True):
    return subprocess.run(
        ["runuser", "-u", OWNER, "--", *argv], capture_output=True, text=True, check=check, cwd="/"
    )


def _wait_port(port: int, process) -> None:
    deadline = time.monotonic() + 30
    import socket

    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise AssertionError(f"nothing listens on port {port}") from None
            time.sleep(0.2)


class Cluster:
    def __init__(self, root: Path):
        self.data = root / "cluster"
        self.run = root / "cluster-run"
        self.port = free_port()
        self.log = root / "cluster.log"
        for folder in (self.data, self.run):
            folder.mkdir(mode=0o700)
            shutil.chown(folder, OWNER, OWNER)
        _as_owner(_tool("initdb"), "-D", str(self.data), "--auth=trust", "-U", OWNER)
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.run}'\nmax_connections = 40\n"
            )
        shutil.chown(self.log.parent, OWNER, OWNER)

    def pg_ctl(self, *args, check=True):
        return _as_owner(
            _tool("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", *args, check=check
        )

    def connect(self, dbname="postgres"):
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user=OWNER, dbname=dbname, autocommit=True
        )

    def switch_wal_and_wait(self, timeout=60) -> str:
        """Close the current WAL segment and wait until it is archived."""
        with self.connect() as conn:
            segment = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                done = conn.execute("SELECT last_archived_wal FROM pg_stat_archiver").fetchone()
                if done[0] and done[0] >= segment:
                    return segment
                time.sleep(0.3)
        raise AssertionError(f"WAL segment {segment} was not archived in {timeout} s")


def _create_container(port: int, name: str, ca: Path) -> None:
    import http.client
    import ssl

    context = ssl.create_default_context(cafile=str(ca))
    create_container(
        port, name, http.client.HTTPSConnection("localhost", port, timeout=10, context=context)
    )


@pytest.fixture(scope="module")
def archived():
    """A platform on a cluster of its own whose WAL `oxygis pitr setup` archives to a
    folder, S3 and Azure sites; the first setup asks for the restart archive_mode needs."""
    _require("pgbackrest", "socat", "initdb")
    if not AZURITE.exists():
        _require("azurite-blob")
    root = Path(tempfile.mkdtemp(prefix="oxytest-pitr-", dir="/tmp"))
    # The cluster's owner runs pgBackRest and the scratch clusters under this folder.
    shutil.chown(root, OWNER, OWNER)
    processes = []
    cluster = None
    try:
        # The embedded mode's local CA (localhost only) and a certificate for localhost.
        tls = ensure_local_tls(root / "tls", ["localhost"])
        for path in (tls.ca_cert.parent, tls.ca_cert):
            shutil.chown(path, OWNER, OWNER)  # pgBackRest checks the sites against it
        # Azurite over TLS.
        az_port = free_port()
        azurite = subprocess.Popen(
            [
                *(str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(az_port)),
                *("--location", str(root / "azurite"), "--silent", "--skipApiVersionCheck"),
                *("--cert", str(tls.cert), "--key", str(tls.key)),  # one PEM, both
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        processes.append(azurite)
        _wait_port(az_port, azurite)
        container = f"c{secrets.token_hex(6)}"
        _create_container(az_port, container, tls.ca_cert)
        # S3: moto on plain HTTP, behind a TLS terminator (pgBackRest speaks https only).
        moto_port, s3_port = free_port(), free_port()
        moto = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        processes.append(moto)
        _wait_port(moto_port, moto)
        socat = subprocess.Popen(
            [
                "socat",
                f"openssl-listen:{s3_port},bind=127.0.0.1,reuseaddr,fork,cert={tls.cert},verify=0",
                f"tcp:127.0.0.1:{moto_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        processes.append(socat)
        _wait_port(s3_port, socat)
        bucket = f"oxygis-{secrets.token_hex(6)}"
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", moto_port, timeout=10)
        conn.request("PUT", f"/{bucket}", headers={"Content-Length": "0"})
        assert conn.getresponse().status == 200
        folder_site = root / "site-a"
        folder_site.mkdir()
        shutil.chown(folder_site, OWNER, OWNER)
        sites = [
            folder_site.as_uri(),
            f"s3://{bucket}/oxygis?region=us-east-1&endpoint=https://localhost:{s3_port}",
            f"az://{container}/oxygis?account_name={AZ_ACCOUNT}"
            f"&endpoint=https://localhost:{az_port}/{AZ_ACCOUNT}",
        ]
        cluster = Cluster(root)
        cluster.pg_ctl("start")
        with cluster.connect() as conn:
            conn.execute("CREATE DATABASE oxycatalog")
        platform = Platform(
            root,
            "live",
            sites,
            database_url=f"postgresql://{OWNER}@127.0.0.1:{cluster.port}/oxycatalog",
        )
        platform.env |= {
            "OXYGIS_DB_PREFIX": "px_",  # a cluster of its own: short names, room for swaps
            "OXYGIS_PITR_DIR": str(root / "pitr"),
            "SSL_CERT_FILE": str(tls.ca_cert),
            "AWS_ACCESS_KEY_ID": "oxygis-test",
            "AWS_SECRET_ACCESS_KEY": "oxygis-test",
            "AZURE_STORAGE_ACCOUNT_KEY": AZ_KEY,
        }
        platform.run("migrate", "--verbosity", "0")
        first = platform.run("pitr", "setup", check=False)
        platform.first_setup = first
        cluster.pg_ctl("restart")
        platform.run("pitr", "setup", timeout=600)
        platform.cluster = cluster
        platform.root = root
        platform.sites = sites
        platform.az = (az_port, container)
        platform.s3 = (s3_port, bucket)
        yield platform
    finally:
        if cluster is not None:
            cluster.pg_ctl("-m", "immediate", "stop", check=False)
        for process in processes:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(root, ignore_errors=True)


def _point(platform) -> tuple[dt.datetime, dict]:
    """A moment between two writes: what the tenants held then."""
    time.sleep(1.2)
    at = dt.datetime.now(dt.UTC)
    before = json.loads(platform.python(SHOW).strip().splitlines()[-1])
    time.sleep(1.2)
    return at, before


def _stamp(at: dt.datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S.%f+00:00")


def test_setup_archives_every_segment_to_the_three_sites(archived):
    """C7: the first `oxygis pitr setup` turns archiving on and says PostgreSQL must
    restart (exit 2, one line); after it, WAL and a base backup reach all three sites,
    which `oxygis pitr status` and `oxygis backup status` show with the lag."""
    first = archived.first_setup
    assert first.returncode == 2, first.stderr
    assert "restart PostgreSQL" in first.stderr and "Traceback" not in first.stderr
    status = archived.run("pitr", "status").stdout
    assert "WAL archive of" in status and ": ok" in status
    for url in archived.sites:
        assert f"{url}: restorable from" in status, status
    assert "lag " in archived.run("backup", "status", check=False).stdout
    config = archived.root / "pitr"
    conf = next(config.glob("*/pgbackrest.conf"))
    assert oct(conf.stat().st_mode & 0o777) == "0o600"
    assert pwd.getpwuid(conf.stat().st_uid).pw_name == OWNER
    # The repositories are encrypted: nothing on the folder site reads as plain WAL.
    segments = list((archived.root / "site-a" / "pitr" / "archive").rglob("*.zst"))
    assert segments and all(b"(\xb5/\xfd" not in p.read_bytes()[:4] for p in segments)


def test_a_tenant_comes_back_as_of_a_moment_side_by_side_then_live(archived):
    """C7: `backup restore --at` gives the tenant exactly as it was at that moment: the
    contacts written before it and none after, side by side in a new tenant, then onto
    the live one (the previous database kept)."""
    archived.python(ADD_CONTACTS, "acme", json.dumps(["before 1", "before 2"]))
    at, before = _point(archived)
    archived.python(ADD_CONTACTS, "acme", json.dumps(["after 1"]))
    archived.cluster.switch_wal_and_wait()
    done = archived.run(
        "backup", "restore", "--tenant", "acme", "--at", _stamp(at), "--side-by-side"
    )
    assert "restored side by side as tenant" in done.stdout, done.stdout
    now = json.loads(archived.python(SHOW).strip().splitlines()[-1])
    copies = [slug for slug in now if slug.startswith("acme-restored-")]
    assert len(copies) == 1
    assert now[copies[0]] == before["acme"]
    assert "after 1" in now["acme"]  # the live tenant is untouched
    live = archived.run(
        "backup", "restore", "--tenant", "acme", "--at", _stamp(at), "--live", check=False
    )
    assert live.returncode == 2 and "--yes" in live.stderr  # no terminal to confirm on
    live = archived.run(
        "backup", "restore", "--tenant", "acme", "--at", _stamp(at), "--live", "--yes"
    )
    assert "kept as" in live.stdout, live.stdout
    assert json.loads(archived.python(SHOW).strip().splitlines()[-1])["acme"] == before["acme"]


def test_a_point_before_the_archive_is_refused(archived):
    """C7: a moment before the first base backup is refused in one line, naming the
    earliest point that can be restored; no tenant is created."""
    before = json.loads(archived.python(SHOW).strip().splitlines()[-1])
    done = archived.run(
        "backup",
        "restore",
        "--tenant",
        "acme",
        "--at",
        "2020-01-01 00:00",
        "--side-by-side",
        check=False,
    )
    assert done.returncode == 2
    assert "the earliest point that can be restored is" in done.stderr
    assert "Traceback" not in done.stderr
    assert json.loads(archived.python(SHOW).strip().splitlines()[-1]) == before


def _site_stores(archived):
    s3_port, bucket = archived.s3
    az_port, container = archived.az
    return [
        S3Store(
            bucket,
            prefix="oxygis/pitr",
            region="us-east-1",
            endpoint=f"https://localhost:{s3_port}",
            access_key_id="oxygis-test",
            secret_access_key="oxygis-test",
            client_options={"allow_invalid_certificates": True},
        ),
        AzureStore(
            container,
            prefix="oxygis/pitr",
            account_name=AZ_ACCOUNT,
            account_key=AZ_KEY,
            endpoint=f"https://localhost:{az_port}/{AZ_ACCOUNT}",
            client_options={"allow_invalid_certificates": True},
        ),
    ]


def _remove_segment(archived, segment: str, *, everywhere: bool) -> None:
    for path in (archived.root / "site-a" / "pitr" / "archive").rglob(f"{segment}-*"):
        path.unlink()
    if everywhere:
        for store in _site_stores(archived):
            paths = [
                m["path"]
                for batch in obstore.list(store, prefix="archive")
                for m in batch
                if m["path"].rsplit("/", 1)[-1].startswith(segment + "-")
            ]
            assert paths, "the segment was not on the site"
            obstore.delete(store, paths)


def test_an_archive_gap_is_passed_over_then_refused(archived):
    """C7: a WAL segment missing from one site: the restore comes from another site;
    missing from every site: refused, naming the segment, and nothing is created."""
    archived.python(ADD_CONTACTS, "gap", json.dumps(["g1"]))
    archived.run("pitr", "backup", "--full")  # so that the gap falls after a base backup
    archived.python(ADD_CONTACTS, "gap", json.dumps(["g2"]))
    lost = archived.cluster.switch_wal_and_wait()
    archived.python(ADD_CONTACTS, "gap", json.dumps(["g3"]))
    at, before = _point(archived)
    archived.python(ADD_CONTACTS, "gap", json.dumps(["g4"]))
    archived.cluster.switch_wal_and_wait()

    _remove_segment(archived, lost, everywhere=False)
    done = archived.run(
        "backup", "restore", "--tenant", "gap", "--at", _stamp(at), "--side-by-side"
    )
    assert "From the WAL archive on s3://" in done.stdout, done.stdout
    now = json.loads(archived.python(SHOW).strip().splitlines()[-1])
    copy = next(slug for slug in now if slug.startswith("gap-restored-"))
    assert now[copy] == before["gap"] == ["g1", "g2", "g3"]

    _remove_segment(archived, lost, everywhere=True)
    count = len(now)
    refused = archived.run(
        "backup", "restore", "--tenant", "gap", "--at", _stamp(at), "--side-by-side", check=False
    )
    assert refused.returncode == 2, refused.stdout
    assert "archive gap" in refused.stderr and lost[:16] in refused.stderr, refused.stderr
    assert len(json.loads(archived.python(SHOW).strip().splitlines()[-1])) == count


def test_an_archive_that_lags_raises_an_alert_until_it_keeps_up(archived):
    """C7/C8: WAL that cannot be archived for more than 5 minutes raises an alert
    (`backup status` exits 1 and says so); once archiving works again it is resolved."""
    with archived.cluster.connect() as conn:
        conn.execute("ALTER SYSTEM SET archive_command = '/bin/false'")
        conn.execute("SELECT pg_reload_conf()")
        time.sleep(0.5)
        segment = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]
    ready = archived.cluster.data / "pg_wal" / "archive_status" / f"{segment}.ready"
    deadline = time.monotonic() + 10
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    past = time.time() - 10 * 60  # as if archiving had failed for ten minutes
    os.utime(ready, (past, past))
    lines = archived.python(CHECK_ARCHIVES)
    assert int(lines.split()[1]) >= 590
    status = archived.run("backup", "status", check=False)
    assert status.returncode == 1
    assert "lags 10 min" in status.stdout and "LAGGING" in status.stdout
    archived.run("pitr", "setup")  # puts the archive command back
    archived.cluster.switch_wal_and_wait()
    archived.python(CHECK_ARCHIVES)
    assert "lags" not in archived.run("backup", "status", check=False).stdout


RECOVER_KILLED = """
import datetime, django
django.setup()
from django.utils import timezone
from oxygis.backups import pitr, swaps
from oxygis.backups.models import Lease, Restore
# As if the killed process's leases had lapsed (90 s).
Lease.objects.update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
print(len(swaps.recover_interrupted()), pitr.sweep_scratch())
run = Restore.objects.order_by("-requested_at").first()
print(run.state, run.detail)
"""


def _running(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_a_killed_point_in_time_restore_leaves_nothing_behind(archived):
    """C7: kill -9 while the scratch cluster is up: the worker's next pass marks the
    restore failed, removes the half-made tenant, stops and removes the scratch cluster."""
    archived.python(ADD_CONTACTS, "acme", json.dumps(["killed 1"]))
    at, before = _point(archived)
    archived.cluster.switch_wal_and_wait()
    scratch = archived.root / "pitr" / "scratch"
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "oxygis.cli", "backup", "restore", "--tenant", "acme"),
            *("--at", _stamp(at), "--side-by-side"),
        ],
        env=archived.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    pid_files = []
    while not pid_files and process.poll() is None and time.monotonic() < deadline:
        pid_files = list(scratch.glob("*/data/postmaster.pid"))
        time.sleep(0.02)
    process.kill()
    process.wait()
    assert pid_files, "the scratch cluster should have been caught running"
    postmaster = int(pid_files[0].read_text().split()[0])
    out = archived.python(RECOVER_KILLED)
    assert "failed" in out and "interrupted" in out, out
    assert not list(scratch.iterdir())
    assert not _running(postmaster)
    assert set(json.loads(archived.python(SHOW).strip().splitlines()[-1])) == set(before)


def test_a_tenant_in_the_base_backup_comes_back_when_its_database_alone_cannot(archived):
    """C7: a tenant the base backup holds is restored with its database only; when the WAL
    of another database touches pages the partial restore left empty (a VACUUM after the
    base backup), PostgreSQL cannot replay it, and the whole cluster is restored instead:
    the tenant still comes back exactly as it was."""
    archived.python(ADD_CONTACTS, "held", json.dumps(["h1", "h2"]))
    archived.python(ADD_CONTACTS, "noisy", json.dumps([f"n{i}" for i in range(500)]))
    archived.run("pitr", "backup", "--full")
    with archived.cluster.connect() as conn:
        (noisy,) = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'px\\_t\\_%' ORDER BY oid DESC"
        ).fetchone()
    with archived.cluster.connect(noisy) as conn:
        conn.execute("VACUUM")  # all-visible marks, logged without page images
    archived.python(ADD_CONTACTS, "held", json.dumps(["h3"]))
    at, before = _point(archived)
    archived.python(ADD_CONTACTS, "held", json.dumps(["h4"]))
    archived.cluster.switch_wal_and_wait()
    done = archived.run(
        "backup", "restore", "--tenant", "held", "--at", _stamp(at), "--side-by-side"
    )
    assert "its database alone could not replay" in done.stdout, done.stdout
    now = json.loads(archived.python(SHOW).strip().splitlines()[-1])
    copy = next(slug for slug in now if slug.startswith("held-restored-"))
    assert now[copy] == before["held"] == ["h1", "h2", "h3"]
