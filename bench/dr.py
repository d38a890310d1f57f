"""Benchmark: rebuild a platform from one backup site (`oxygis dr rebuild`, issue 18).

An "old platform" (its own data folder; on PostgreSQL its own catalog and name prefix on
the server at OXYGIS_BENCH_PG_URL, default the local one) with N tenants (3 contacts, a
product and an order each), backed up to three file sites by `oxygis backup run --all`;
then, per --jobs value, a "new machine" (another data folder and catalog, the same keys)
rebuilt from one site. Printed: the rebuild's wall time, per tenant, and each tenant's
achieved RTO from the command's own report, extrapolated linearly to 1,000 and 10,000
tenants (a rebuild is a queue of independent restores).

Not a test: record the figures, with the machine, in bench/README.md.

    python bench/dr.py --engine sqlite|postgresql [--tenants 10] [--jobs 1,2]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("OXYGIS_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

MAKE_DATA = """
import sys, django
django.setup()
from decimal import Decimal
from django.contrib.auth import get_user_model
from oxygis.access.actors import system
from oxygis.sales import services
from oxygis.sales.models import Contact, Product
from oxygis.tenancy.databases import tenant_context
from oxygis.platform.provisioning import provision_tenant
plans = ["paid", "trial", "education", "freemium"]
for i in range(int(sys.argv[1])):
    made = provision_tenant(f"dr-{i:05d}", name=f"DR {i}", plan=plans[i % 4])
    with tenant_context(made.tenant), system(reason="benchmark data"):
        admin = get_user_model().objects.get(username="admin")
        people = [Contact.objects.create(name=f"Customer {n}") for n in range(3)]
        product = Product.objects.create(name="Gadget", sku="G-1", unit_price=Decimal("12.50"))
        services.create_order(customer=people[0], salesperson=admin, lines=[
            services.LineInput("Gadget", Decimal(2), Decimal("12.50"), Decimal("20"), product)])
"""


RTOS = """
import json, django
django.setup()
from oxygis.backups.models import RecoveredTenant
done = RecoveredTenant.objects.filter(state="done").select_related("recovery")
print(json.dumps([(t.finished_at - t.recovery.started_at).total_seconds() for t in done]))
"""


class Platform:
    def __init__(self, root: Path, name: str, engine: str, sites: list[str], keys=None):
        self.var = root / name
        self.var.mkdir()
        if keys is not None:
            shutil.copytree(keys, self.var / "keys")
        self.prefix = f"oxybenchdr_{name}{secrets.token_hex(2)}_"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("OXYGIS_")}
        self.env |= {
            "OXYGIS_VAR_DIR": str(self.var),
            "OXYGIS_DB_PREFIX": self.prefix,
            "OXYGIS_BACKUP_SITES": ",".join(sites),
            "DJANGO_SETTINGS_MODULE": "oxygis.settings",
        }
        if engine == "postgresql":
            admin(f'CREATE DATABASE "{self.prefix}catalog"')
            self.env["OXYGIS_DATABASE_URL"] = PG_URL.rsplit("/", 1)[0] + f"/{self.prefix}catalog"

    def oxygis(self, *args) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [sys.executable, "-m", "oxygis.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise SystemExit(f"oxygis {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        return done

    def python(self, code: str, *args) -> str:
        done = subprocess.run(
            [sys.executable, "-c", code, *args], env=self.env, capture_output=True, text=True
        )
        if done.returncode:
            raise SystemExit(done.stderr[-3000:])
        return done.stdout


def admin(statement: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(statement)


def drop_prefixed(prefix: str) -> None:
    import psycopg
    from psycopg import sql

    like = prefix.replace("_", r"\_") + "%"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        for kind, query in (
            ("DATABASE", "SELECT datname FROM pg_database WHERE datname LIKE %s"),
            ("ROLE", "SELECT rolname FROM pg_roles WHERE rolname LIKE %s"),
        ):
            for (name,) in conn.execute(query, [like]).fetchall():
                extra = " WITH (FORCE)" if kind == "DATABASE" else ""
                conn.execute(
                    sql.SQL(f"DROP {kind} IF EXISTS {{}}{extra}").format(sql.Identifier(name))
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--jobs", default="1,2", help="comma-separated --jobs values")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="oxygis-bench-dr-"))
    sites = [(root / f"site-{n}").as_uri() for n in "abc"]
    try:
        old = Platform(root, "old", args.engine, sites)
        old.oxygis("migrate", "--verbosity", "0")
        began = time.perf_counter()
        old.python(MAKE_DATA, str(args.tenants))
        made = time.perf_counter() - began
        began = time.perf_counter()
        old.oxygis("backup", "run", "--all")
        backed = time.perf_counter() - began
        print(f"{args.tenants} tenants made in {made:.1f} s, backed up in {backed:.1f} s")
        results = []
        for jobs in [int(j) for j in args.jobs.split(",")]:
            new = Platform(root, f"new{jobs}", args.engine, sites, keys=old.var / "keys")
            began = time.perf_counter()
            new.oxygis("dr", "rebuild", "--from-site", sites[0], "--jobs", str(jobs))
            wall = time.perf_counter() - began
            rtos = json.loads(new.python(RTOS).strip().splitlines()[-1])
            if len(rtos) != args.tenants:
                raise SystemExit(f"expected {args.tenants} tenants back, found {len(rtos)}")
            results.append(
                {
                    "jobs": jobs,
                    "wall_s": wall,
                    "per_tenant_s": wall / args.tenants,
                    "rto_median_s": statistics.median(rtos),
                    "rto_max_s": max(rtos),
                }
            )
        print(json.dumps(results, indent=1))
        print(f"\n{args.engine}, {args.tenants} tenants, from a file site")
        print(
            f"{'jobs':>4} {'wall s':>8} {'s/tenant':>9} {'RTO p50 s':>10} {'RTO max s':>10}"
            f" {'1,000 (h)':>10} {'10,000 (h)':>11}"
        )
        for r in results:
            print(
                f"{r['jobs']:>4} {r['wall_s']:8.1f} {r['per_tenant_s']:9.2f} "
                f"{r['rto_median_s']:10.1f} {r['rto_max_s']:10.1f} "
                f"{r['per_tenant_s'] * 1000 / 3600:10.2f} {r['per_tenant_s'] * 10000 / 3600:11.2f}"
            )
    finally:
        if args.engine == "postgresql":
            drop_prefixed("oxybenchdr_")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
