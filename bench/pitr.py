"""Benchmark: point-in-time recovery on PostgreSQL (`oxygis pitr`, issue 18).

A PostgreSQL cluster of its own (initdb on a free loopback port, run by the `postgres`
user), a platform whose catalog and N tenants (C contacts each) live on it, WAL archived
by `oxygis pitr setup` to three file sites. Measured:

* RPO: while a writer commits a row every second, probes commit at random moments and
  time how long until the WAL segment holding that commit is archived (what would be
  lost if the server vanished at the commit; bounded by archive_timeout + the push).
* The restore of one tenant as of a moment (`backup restore --at ... --side-by-side`):
  a tenant the base backup holds (only its database is restored, `--db-include`) and one
  created after the base backup (the whole cluster is restored).

Not a test: record the figures, with the machine, in bench/README.md. Run as root.

    python bench/pitr.py [--tenants 10] [--contacts 2000] [--probes 5] [--timeout 60]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dr import Platform

OWNER = "postgres"
MAKE_DATA = """
import sys, django
django.setup()
from oxygis.access.actors import system
from oxygis.sales.models import Contact
from oxygis.tenancy.databases import tenant_context
from oxygis.platform.provisioning import provision_tenant
first, count, contacts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(count):
    made = provision_tenant(f"{first}-{i:04d}", name=f"PITR {i}", plan="paid")
    with tenant_context(made.tenant), system(reason="benchmark data"):
        Contact.objects.bulk_create(Contact(name=f"Customer {n}") for n in range(contacts))
"""


def tool(name: str) -> str:
    return str(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))[-1])


def as_owner(*argv) -> None:
    subprocess.run(["runuser", "-u", OWNER, "--", *argv], check=True, capture_output=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, root: Path):
        self.data, self.port, self.log = root / "cluster", free_port(), root / "cluster.log"
        self.data.mkdir(mode=0o700)
        shutil.chown(self.data, OWNER, OWNER)
        as_owner(tool("initdb"), "-D", str(self.data), "--auth=trust", "-U", OWNER)
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{root}'\nmax_connections = 60\n"
            )

    def pg_ctl(self, *args) -> None:
        as_owner(tool("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", *args)

    def connect(self, dbname="postgres"):
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user=OWNER, dbname=dbname, autocommit=True
        )


def writer(cluster: Cluster, stop: threading.Event) -> None:
    """A row a second: the steady trickle of a quiet tenant."""
    with cluster.connect() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_trickle (at timestamptz)")
        while not stop.wait(1.0):
            conn.execute("INSERT INTO bench_trickle VALUES (now())")


def probe(cluster: Cluster, limit: float) -> float:
    """Seconds from a commit until its WAL segment is archived."""
    with cluster.connect() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_probe (at timestamptz)")
        conn.execute("INSERT INTO bench_probe VALUES (now())")
        committed = time.monotonic()
        segment = conn.execute("SELECT pg_walfile_name(pg_current_wal_insert_lsn())").fetchone()
        while time.monotonic() - committed < limit:
            last = conn.execute("SELECT last_archived_wal FROM pg_stat_archiver").fetchone()[0]
            if last and last >= segment[0]:
                return time.monotonic() - committed
            time.sleep(0.1)
    raise SystemExit(f"segment {segment[0]} not archived within {limit:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--contacts", type=int, default=2000)
    parser.add_argument("--probes", type=int, default=5)
    parser.add_argument("--timeout", type=int, default=60, help="archive_timeout, seconds")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="oxybench-pitr-", dir="/tmp"))
    shutil.chown(root, OWNER, OWNER)
    cluster = Cluster(root)
    try:
        cluster.pg_ctl("start")
        with cluster.connect() as conn:
            conn.execute("CREATE DATABASE oxycatalog")
        sites = []
        for name in "abc":
            folder = root / f"site-{name}"
            folder.mkdir()
            shutil.chown(folder, OWNER, OWNER)
            sites.append(folder.as_uri())
        platform = Platform(root, "live", "none", sites)
        platform.env |= {
            "OXYGIS_DATABASE_URL": f"postgresql://{OWNER}@127.0.0.1:{cluster.port}/oxycatalog",
            "OXYGIS_DB_PREFIX": "pb_",
            "OXYGIS_PITR_DIR": str(root / "pitr"),
            "OXYGIS_PITR_ARCHIVE_TIMEOUT": str(args.timeout),
        }
        platform.oxygis("migrate", "--verbosity", "0")
        started = time.perf_counter()
        platform.python(MAKE_DATA, "t", str(args.tenants), str(args.contacts))
        print(
            f"{args.tenants} tenants of {args.contacts} contacts: "
            f"{time.perf_counter() - started:.1f} s"
        )
        subprocess.run(
            [sys.executable, "-m", "oxygis.cli", "pitr", "setup"],
            env=platform.env,
            capture_output=True,
        )
        cluster.pg_ctl("restart")
        started = time.perf_counter()
        platform.oxygis("pitr", "setup")
        with cluster.connect() as conn:
            size = conn.execute("SELECT sum(pg_database_size(datname)) FROM pg_database")
            megabytes = float(size.fetchone()[0]) / 1e6
        print(
            f"pitr setup (stanza, check, a full base backup to each of 3 sites of a "
            f"{megabytes:.0f} MB cluster): {time.perf_counter() - started:.1f} s"
        )

        stop = threading.Event()
        trickle = threading.Thread(target=writer, args=(cluster, stop), daemon=True)
        trickle.start()
        delays = []
        for _ in range(args.probes):
            time.sleep(random.uniform(0, args.timeout))
            delays.append(probe(cluster, args.timeout * 3))
            print(f"  commit archived after {delays[-1]:.1f} s")
        print(
            f"RPO with archive_timeout {args.timeout} s, a commit a second: median "
            f"{statistics.median(delays):.1f} s, max {max(delays):.1f} s "
            f"over {len(delays)} probes"
        )

        at = dt.datetime.now(dt.UTC)
        time.sleep(1.5)
        platform.python(MAKE_DATA, "late", "1", str(args.contacts))
        time.sleep(1.5)
        late_at = dt.datetime.now(dt.UTC)
        time.sleep(1.5)
        with cluster.connect() as conn:
            conn.execute("SELECT pg_switch_wal()")
        time.sleep(3)
        stop.set()
        for slug, moment, how in (
            ("t-0000", at, "held by the base backup"),
            ("late-0000", late_at, "created after the base backup"),
        ):
            started = time.perf_counter()
            done = platform.oxygis(
                "backup",
                "restore",
                "--tenant",
                slug,
                "--side-by-side",
                "--at",
                moment.strftime("%Y-%m-%d %H:%M:%S.%f+00:00"),
            )
            found = re.search(r"From the WAL archive on \S+ \(([^)]*)\)", done.stdout)
            how += ": " + (found.group(1) if found else "?")
            print(
                f"restore of {slug} as of a moment ({how}): {time.perf_counter() - started:.1f} s"
            )
        shown = platform.python(
            "import django, json; django.setup()\n"
            "from oxygis.tenancy.models import Tenant\n"
            "print(json.dumps(sorted(Tenant.objects.values_list('slug', flat=True))))"
        )
        copies = [s for s in json.loads(shown.strip().splitlines()[-1]) if "-restored-" in s]
        print("restored as:", ", ".join(copies))
    finally:
        subprocess.run(
            [
                "runuser",
                "-u",
                OWNER,
                "--",
                tool("pg_ctl"),
                "-D",
                str(cluster.data),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
