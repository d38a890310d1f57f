"""Benchmark: backup and restore of a PostgreSQL tenant of about 1 GB, against the bare
tools on the same database (``pg_dump -Fc | zstd`` and ``zstd -dc | pg_restore``).

Ours does more: encryption (age), three sites written at once and each read back and
hashed, row counts in the dump's snapshot, a signed manifest; on restore, the checks
against the manifest and the migrations. Targets: at most 1.5x the bare tools' time,
peak memory of our process under 200 MB. Not a test: record results in bench/README.md.

    python bench/backup.py [--size-mb 1024] [--pg-url postgresql://postgres@127.0.0.1/postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

SLUG = "bench-big"


def measured(argv: list[str], env: dict, *, shell: bool = False) -> tuple[float, float]:
    """Run a command in a fresh wrapper process: (seconds, peak RSS in MB of the largest
    process it ran)."""
    wrapper = (
        "import resource, subprocess, sys, time, json\n"
        "t = time.perf_counter()\n"
        "subprocess.run(json.loads(sys.argv[1]), shell=json.loads(sys.argv[2]), check=True)\n"
        "t = time.perf_counter() - t\n"
        "print(json.dumps([t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024]))\n"
    )
    command = argv[0] if shell else argv
    out = subprocess.run(
        [sys.executable, "-c", wrapper, json.dumps(command), json.dumps(shell)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        raise SystemExit(f"failed: {command}\n{out.stderr[-2000:]}")
    return tuple(json.loads(out.stdout.strip().splitlines()[-1]))


def oxygis(*args: str) -> list[str]:
    return [sys.executable, "-m", "oxygis.cli", *args]


def fill(env: dict, size_mb: int) -> dict:
    """Provision the tenant and fill it with ~size_mb of plausible rows (as its own role)."""
    code = f"""
import django, json
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0, interactive=False)
from oxygis.platform.provisioning import provision_tenant
from oxygis.tenancy.engines import engine_for
from oxygis.backups.dumps import DatabaseRef
t = provision_tenant("{SLUG}", name="Bench big", plan="paid").tenant
ref = DatabaseRef.from_entry(engine_for(t.database_server).tenant_entry(t))
rows = {size_mb} * 1024 * 1024 // 230
with ref.connect(autocommit=True) as conn:
    conn.execute(
        "CREATE TABLE bench_events (id bigint PRIMARY KEY, customer text, email text, "
        "amount numeric(12,2), note text, at timestamptz)"
    )
    conn.execute(
        "INSERT INTO bench_events SELECT i, 'Customer ' || (i %% 50000), "
        "'c' || (i %% 50000) || '@example.org', (i %% 100000) / 100.0, "
        "md5(i::text) || ' ' || md5((i * 7)::text) || ' ' || repeat('lorem ipsum ', 4), "
        "now() - (i || ' seconds')::interval FROM generate_series(1, %s) AS i",
        [rows],
    )
    conn.execute("VACUUM ANALYZE bench_events")
    size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
print(json.dumps({{"db": t.db_name, "user": t.db_name, "bytes": size, "rows": rows,
    "password": ref.params.get("password", "")}}))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    if out.returncode:
        raise SystemExit(f"fill failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()

    import psycopg
    from psycopg import sql

    var = tempfile.mkdtemp(prefix="oxygis-bench-backup-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OXYGIS_")}
    env |= {
        "DJANGO_SETTINGS_MODULE": "oxygis.settings",
        "OXYGIS_VAR_DIR": var,
        "OXYGIS_DB_PREFIX": "oxybench_",
        "OXYGIS_ENV": "test",
        "OXYGIS_DATABASE_URL": args.pg_url.rsplit("/", 1)[0] + "/oxybench_catalog",
    }
    admin = psycopg.connect(args.pg_url, autocommit=True)

    def sweep():
        for (name,) in admin.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, 'oxybench_')"
        ).fetchall():
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        for (name,) in admin.execute(
            "SELECT rolname FROM pg_roles WHERE starts_with(rolname, 'oxybench_')"
        ).fetchall():
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))

    sweep()
    admin.execute('CREATE DATABASE "oxybench_catalog"')
    try:
        started = time.perf_counter()
        info = fill(env, args.size_mb)
        print(
            f"tenant database: {info['bytes'] / 2**20:.0f} MB, {info['rows']:,} rows "
            f"(filled in {time.perf_counter() - started:.0f} s)"
        )
        tool_env = {**env, "PGHOST": "127.0.0.1", "PGUSER": info["user"]}
        if info["password"]:
            tool_env["PGPASSWORD"] = info["password"]
        bare = os.path.join(var, "bare.dump.zst")
        results = {}
        results["bare backup: pg_dump -Fc | zstd"] = measured(
            [f"pg_dump -Fc -d {info['db']} | zstd -q -f -o {bare}"], tool_env, shell=True
        )
        bare_size = os.path.getsize(bare)
        results["bare backup: pg_dump -Fc -Z0 | zstd"] = measured(
            [f"pg_dump -Fc -Z0 -d {info['db']} | zstd -q -f -o {bare}"], tool_env, shell=True
        )
        results["oxygis backup run"] = measured(oxygis("backup", "run", "--tenant", SLUG), env)
        sites = os.path.join(var, "backups")
        stored = sum(
            os.path.getsize(os.path.join(d, f))
            for d, _, files in os.walk(os.path.join(sites, "site-a"))
            for f in files
            if f == "dump.age"
        )
        admin.execute(
            sql.SQL("CREATE DATABASE oxybench_bare_restore OWNER {}").format(
                sql.Identifier(info["user"])
            )
        )
        with psycopg.connect(
            args.pg_url.rsplit("/", 1)[0] + "/oxybench_bare_restore", autocommit=True
        ) as conn:
            conn.execute(
                sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(info["user"]))
            )
        results["bare restore: zstd -dc | pg_restore"] = measured(
            [
                f"zstd -dc {bare} | pg_restore --no-owner --no-privileges --exit-on-error "
                "--single-transaction -d oxybench_bare_restore"
            ],
            tool_env,
            shell=True,
        )
        results["oxygis backup restore --side-by-side"] = measured(
            oxygis("backup", "restore", "--tenant", SLUG, "--side-by-side"), env
        )
    finally:
        sweep()
        admin.close()
        shutil.rmtree(var, ignore_errors=True)

    print(f"compressed: bare {bare_size / 2**20:.0f} MB, ours (encrypted) {stored / 2**20:.0f} MB")
    print(f"{'step':<40} {'seconds':>8} {'peak MB':>8}")
    for label, (seconds, peak) in results.items():
        print(f"{label:<40} {seconds:8.1f} {peak:8.0f}")
    ours_backup = results["oxygis backup run"][0]
    ours_restore = results["oxygis backup restore --side-by-side"][0]
    for label, ours, bare_label in (
        ("backup", ours_backup, "bare backup: pg_dump -Fc | zstd"),
        ("backup", ours_backup, "bare backup: pg_dump -Fc -Z0 | zstd"),
        ("restore", ours_restore, "bare restore: zstd -dc | pg_restore"),
    ):
        ratio = ours / results[bare_label][0]
        print(f"{label} ratio vs {bare_label.split(': ')[1]}: {ratio:.2f}x")


if __name__ == "__main__":
    main()
