"""Benchmark: provisioning N tenants from the template, on SQLite and PostgreSQL.

Prints p50/p95 seconds per tenant, against creating a database the usual way (an empty
database brought up by running every migration). Not a test: record results, with the
machine, in bench/README.md.

    python bench/provision.py [-n 50] [--engine sqlite|postgresql|both]
        [--pg-url postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def child(n: int, scratch_runs: int) -> dict:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    from oxygis.platform.provisioning import drop_tenant, provision_tenant
    from oxygis.tenancy.databases import default_server
    from oxygis.tenancy.engines import engine_for, forget_alias, register_alias
    from oxygis.tenancy.models import Tenant

    call_command("migrate", verbosity=0, interactive=False)
    server = default_server()
    engine = engine_for(server)

    provision, drop = [], []
    for i in range(n):
        start = time.perf_counter()
        provision_tenant(f"bench-{i:04d}", name=f"Bench {i}", plan="paid")
        provision.append(time.perf_counter() - start)
    for tenant in list(Tenant.objects.all()):
        start = time.perf_counter()
        drop_tenant(tenant)
        drop.append(time.perf_counter() - start)

    # The usual way, for comparison: an empty database, every migration run on it.
    scratch = []
    for i in range(scratch_runs):
        tenant = Tenant(slug=f"scratch-{i}", db_name=f"{os.environ['OXYGIS_DB_PREFIX']}s_{i}")
        start = time.perf_counter()
        if server.engine == server.POSTGRESQL:
            from psycopg import sql

            with engine.admin() as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(tenant.db_name)))
            entry = engine._entry(tenant.db_name, server.admin_user, "")
        else:
            entry = engine._entry(engine.folder / f"{tenant.db_name}.sqlite3")
        register_alias("scratch", entry)
        call_command("migrate", database="scratch", verbosity=0, interactive=False)
        scratch.append(time.perf_counter() - start)
        forget_alias("scratch")
        if server.engine == server.POSTGRESQL:
            with engine.admin() as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(tenant.db_name))
                )
        else:
            (engine.folder / f"{tenant.db_name}.sqlite3").unlink()
    from django.contrib.auth.hashers import make_password

    hashing = []
    for _ in range(5):
        start = time.perf_counter()
        make_password("Bench-password-1!")
        hashing.append(time.perf_counter() - start)
    connections.close_all()
    return {"provision": provision, "drop": drop, "scratch": scratch, "hash": hashing}


def run_engine(engine: str, n: int, pg_url: str, scratch_runs: int) -> dict:
    var = tempfile.mkdtemp(prefix="oxygis-bench-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OXYGIS_")}
    env |= {"OXYGIS_VAR_DIR": var, "OXYGIS_DB_PREFIX": "oxybench_", "OXYGIS_ENV": "test"}
    admin = None
    if engine == "postgresql":
        import psycopg

        admin = psycopg.connect(pg_url, autocommit=True)
        _pg_sweep(admin)
        admin.execute('CREATE DATABASE "oxybench_catalog"')
        env["OXYGIS_DATABASE_URL"] = pg_url.rsplit("/", 1)[0] + "/oxybench_catalog"
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(n), "--scratch", str(scratch_runs)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode:
            raise SystemExit(f"{engine} run failed:\n{out.stderr}")
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        if admin is not None:
            _pg_sweep(admin)
            admin.close()


def _pg_sweep(conn) -> None:
    from psycopg import sql

    for (name,) in conn.execute(
        "SELECT datname FROM pg_database WHERE starts_with(datname, 'oxybench_')"
    ).fetchall():
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
    for (name,) in conn.execute(
        "SELECT rolname FROM pg_roles WHERE starts_with(rolname, 'oxybench_')"
    ).fetchall():
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=50, help="tenants per engine (default 50)")
    parser.add_argument("--engine", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--scratch", type=int, default=5, help="from-scratch migrate runs")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "oxygis.settings")
        print(json.dumps(child(args.child, args.scratch)))
        return

    engines = ["sqlite", "postgresql"] if args.engine == "both" else [args.engine]
    print(f"provisioning {args.n} tenants per engine; {args.scratch} from-scratch migrations")
    print(f"{'engine':<11} {'step':<26} {'p50 s':>7} {'p95 s':>7} {'max s':>7}")
    for engine in engines:
        result = run_engine(engine, args.n, args.pg_url, args.scratch)
        rows = [
            ("provision (template copy)", result["provision"]),
            ("drop", result["drop"]),
            ("migrate from scratch", result["scratch"]),
            ("  (admin password hash)", result["hash"]),
        ]
        for label, values in rows:
            print(
                f"{engine:<11} {label:<26} {statistics.median(values):7.3f} "
                f"{percentile(values, 0.95):7.3f} {max(values):7.3f}"
            )
        ratio = statistics.median(result["scratch"]) / statistics.median(result["provision"])
        print(f"{engine:<11} from-scratch / template p50 ratio: {ratio:.1f}x")


if __name__ == "__main__":
    main()
