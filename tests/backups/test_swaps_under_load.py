"""C4: live restores and rollbacks while clients write, through the real server.

Writers create orders through the API without pause while the operator restores the
live database from a backup, rolls back, restores again and rolls back again. Every
order the API acknowledged (201) must be found afterwards, by its number and the text
of its line, in the live database or in one of the databases the swaps kept; no order
number may be given out twice; clients see 201 or a clean 503 with Retry-After, never
an error."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from pathlib import Path

import pytest

from tests.served import WRITER_SETUP, Served, Writers, free_port
from tests.tenancy.test_cli import oxygis

SETUP = WRITER_SETUP.format(prefix="swapload-")


def orders_in_sqlite(path: Path) -> set[tuple[str, str]]:
    conn = sqlite3.connect(path)
    try:
        return set(
            conn.execute(
                "SELECT o.number, l.description FROM sales_order o "
                "JOIN sales_orderline l ON l.order_id = o.id"
            ).fetchall()
        )
    finally:
        conn.close()


def orders_in_postgresql(dbname: str) -> set[tuple[str, str]]:
    import psycopg
    from psycopg import sql

    from tests.conftest import PG_ADMIN_URL

    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        # Kept databases are closed to connections: open them for the count.
        admin.execute(
            sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(sql.Identifier(dbname))
        )
    with psycopg.connect(f"{base}/{dbname}") as conn:
        return set(
            conn.execute(
                "SELECT o.number, l.description FROM sales_order o "
                "JOIN sales_orderline l ON l.order_id = o.id"
            ).fetchall()
        )


def every_database(var_dir: Path, db_name: str) -> dict[str, set]:
    """The live database and every database kept by a swap, with the orders they hold."""
    if os.environ.get("OXYGIS_DATABASE_URL"):
        import psycopg

        from tests.conftest import PG_ADMIN_URL

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            names = [
                row[0]
                for row in admin.execute(
                    "SELECT datname FROM pg_database WHERE datname = %s OR datname LIKE %s",
                    [db_name, db_name.replace("_", r"\_") + r"\_p%"],
                ).fetchall()
            ]
        return {name: orders_in_postgresql(name) for name in names}
    folder = var_dir / "tenants"
    files = [folder / f"{db_name}.sqlite3", *folder.glob(f"{db_name}_p*.sqlite3")]
    return {path.name: orders_in_sqlite(path) for path in files}


@pytest.fixture
def served(tmp_path):
    server = Served(tmp_path, free_port(), workers=2)
    yield server
    if server.process.poll() is None:
        server.stop()
    if os.environ.get("OXYGIS_DATABASE_URL"):
        oxygis("tenant", "drop", "demo", "--yes")


RECOVER = "from oxygis.backups.swaps import recover_interrupted; recover_interrupted()"


def test_no_acknowledged_write_is_lost_through_restores_rollbacks_and_kills(served):
    """C4 (drained swaps, numbers never reissued, resumable swaps): three writers through
    restore, rollback, restore, rollback, then live restores killed with SIGKILL at
    random moments and recovered; every acknowledged order is found by number and line
    in the live or a kept database, and no number was given twice."""
    import random
    import signal
    import subprocess
    import sys

    env = {"OXYGIS_VAR_DIR": str(served.var_dir), "OXYGIS_RESTORE_DRAIN_SECONDS": "30"}
    made = oxygis("shell", "-c", SETUP, env=env)
    assert made.returncode == 0, made.stderr
    world = json.loads(made.stdout.strip().splitlines()[-1])
    host = f"{world['slug']}.localhost"

    def operator(*args):
        result = oxygis(*args, env=env)
        assert result.returncode == 0, f"{args}: {result.stdout}{result.stderr}"
        return result.stdout

    restore_live = ("backup", "restore", "--tenant", world["slug"], "--live", "--yes")
    try:
        with Writers(served, host, world["token"], world["customer"]) as writers:
            time.sleep(2)
            operator("backup", "run", "--tenant", world["slug"])
            time.sleep(2)
            reports, lifetimes = [], []
            for _ in range(2):
                started = time.monotonic()
                reports.append(operator(*restore_live))
                lifetimes.append(time.monotonic() - started)
                time.sleep(2)
                operator("backup", "rollback", "--tenant", world["slug"], "--yes")
                time.sleep(2)
            rng = random.Random(os.environ.get("OXYGIS_TEST_KILL_SEED", "3"))
            for _ in range(3):
                process = subprocess.Popen(
                    [sys.executable, "-m", "oxygis.cli", *restore_live],
                    env={**os.environ, **env},
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(rng.uniform(0.2, 0.95) * min(lifetimes))
                if process.poll() is None:
                    process.send_signal(signal.SIGKILL)
                process.wait()
                operator("shell", "-c", RECOVER)
                time.sleep(2)
        assert writers.errors == [], writers.errors[:5]
        assert len(writers.acknowledged) > 50, "the writers should have written throughout"
        assert writers.unavailable > 0, "the swaps should have been felt (503s)"
        numbers = [number for number, _ in writers.acknowledged]
        assert len(numbers) == len(set(numbers)), "an order number was given out twice"

        databases = every_database(served.var_dir, world["db"])
        found = set().union(*databases.values())
        missing = [a for a in writers.acknowledged if a not in found]
        assert missing == [], f"{len(missing)} acknowledged orders lost, e.g. {missing[:3]}"

        # Before anything was replaced, the operator was told what, and where it went.
        assert "The live database holds, since" in reports[0]
        assert "kept as" in reports[0]
        listed = re.search(r"listed in (\S+\.csv)", reports[0])
        assert listed and Path(listed[1]).read_text().startswith("number,created_at")
    finally:
        oxygis("tenant", "drop", world["slug"], "--yes", env=env)
