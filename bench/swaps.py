"""Benchmark: live restores and rollbacks while clients write (what a swap costs them).

`oxygis serve` (2 workers) on a fresh data folder; a tenant with an API key; W writer
threads creating orders through the API without pause; the operator backs up, then
does R rounds of live restore + rollback. Printed: orders acknowledged, lost (not found
in the live or a kept database) and given a number twice (both must be 0), how long
clients saw 503s around each swap (the longest run of 503s), and the request times
outside swaps. Not a test: record the figures, with the machine, in bench/README.md.

    python bench/swaps.py [--engine sqlite|postgresql] [--writers 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.* (run as a script)
from tests.served import WRITER_SETUP  # noqa: E402

SETUP = WRITER_SETUP.format(prefix="swapbench-")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def oxygis(env, *args) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "oxygis.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"oxygis {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def request(port, ca, host, body, token):
    context = ssl.create_default_context(cafile=ca)
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock = context.wrap_socket(raw, server_hostname=host)
    try:
        conn = http.client.HTTPConnection(host, port)
        conn.sock = sock
        conn.request(
            "POST",
            "/api/v1/orders",
            body=json.dumps(body),
            headers={
                "Host": f"{host}:{port}",
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
            },
        )
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        sock.close()


def orders_in(engine, var_dir: Path, db: str, pg_url: str) -> set:
    query = (
        "SELECT o.number, l.description FROM sales_order o "
        "JOIN sales_orderline l ON l.order_id = o.id"
    )
    found = set()
    if engine == "sqlite":
        folder = var_dir / "tenants"
        for path in [folder / f"{db}.sqlite3", *folder.glob(f"{db}_p*.sqlite3")]:
            conn = sqlite3.connect(path)
            found |= set(conn.execute(query).fetchall())
            conn.close()
        return found
    import psycopg
    from psycopg import sql

    with psycopg.connect(pg_url, autocommit=True) as admin:
        names = [
            r[0]
            for r in admin.execute(
                "SELECT datname FROM pg_database WHERE datname = %s OR datname LIKE %s",
                [db, db.replace("_", r"\_") + r"\_p%"],
            ).fetchall()
        ]
        for name in names:
            admin.execute(
                sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(
                    sql.Identifier(name)
                )
            )
    base = pg_url.rsplit("/", 1)[0]
    for name in names:
        with psycopg.connect(f"{base}/{name}") as conn:
            found |= set(conn.execute(query).fetchall())
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--writers", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()

    var_dir = Path(tempfile.mkdtemp(prefix="oxygis-bench-swaps-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OXYGIS_")}
    env |= {"OXYGIS_VAR_DIR": str(var_dir), "DJANGO_SETTINGS_MODULE": "oxygis.settings"}
    prefix = f"oxybench_{os.getpid()}_"
    if args.engine == "postgresql":
        import psycopg

        with psycopg.connect(args.pg_url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{prefix}catalog"')
        env |= {
            "OXYGIS_DATABASE_URL": f"{args.pg_url.rsplit('/', 1)[0]}/{prefix}catalog",
            "OXYGIS_DB_PREFIX": prefix,
        }
    port = free_port()
    log = open(var_dir / "serve.log", "w")  # noqa: SIM115 - closed at the end
    server = subprocess.Popen(
        [sys.executable, "-m", "oxygis.cli", "serve", "--port", str(port), "--no-worker"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(120):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        world = json.loads(oxygis(env, "shell", "-c", SETUP).strip().splitlines()[-1])
        host, ca = f"{world['slug']}.localhost", str(var_dir / "tls" / "ca.pem")
        acknowledged, times, statuses, errors = [], [], [], []
        stop = threading.Event()
        lock = threading.Lock()

        def write(n):
            i = 0
            while not stop.is_set():
                i += 1
                text = f"writer {n} order {i}"
                body = {
                    "customer_id": world["customer"],
                    "lines": [{"description": text, "quantity": "1", "unit_price": "1.00"}],
                }
                started = time.monotonic()
                try:
                    status, data = request(port, ca, host, body, world["token"])
                except OSError as exc:
                    errors.append(str(exc))
                    continue
                elapsed = time.monotonic() - started
                with lock:
                    statuses.append((started, status))
                    if status == 201:
                        times.append(elapsed)
                        acknowledged.append((json.loads(data)["number"], text))
                    elif status == 503:
                        time.sleep(0.1)
                    else:
                        errors.append(f"{status}: {data[:100]!r}")

        threads = [threading.Thread(target=write, args=(n,)) for n in range(args.writers)]
        for thread in threads:
            thread.start()
        time.sleep(2)
        oxygis(env, "backup", "run", "--tenant", world["slug"])
        swaps = []
        for _ in range(args.rounds):
            for action in (
                ("backup", "restore", "--tenant", world["slug"], "--live", "--yes"),
                ("backup", "rollback", "--tenant", world["slug"], "--yes"),
            ):
                time.sleep(2)
                started = time.monotonic()
                oxygis(env, *action)
                swaps.append((action[1], time.monotonic() - started))
        time.sleep(2)
        stop.set()
        for thread in threads:
            thread.join()

        found = orders_in(args.engine, var_dir, world["db"], args.pg_url)
        lost = [a for a in acknowledged if a not in found]
        numbers = [n for n, _ in acknowledged]
        runs, current, run_start = [], None, None
        for at, status in sorted(statuses):
            if status == 503 and current is None:
                current = run_start = at
            elif status == 503:
                current = at
            elif current is not None:
                runs.append(current - run_start)
                current = None
        print(f"engine {args.engine}, {args.writers} writers, {args.rounds} rounds")
        print(f"orders acknowledged   {len(acknowledged)}")
        print(f"lost                  {len(lost)}")
        print(f"numbers given twice   {len(numbers) - len(set(numbers))}")
        print(f"errors                {len(errors)}")
        print(f"503 answers           {sum(1 for _, s in statuses if s == 503)}")
        print(f"longest 503 run, s    {max(runs, default=0):.2f} (of {len(runs)} runs)")
        print(
            f"request p50 / p95, s  {statistics.median(times):.3f} / "
            f"{statistics.quantiles(times, n=20)[18]:.3f}"
        )
        for name, seconds in swaps:
            print(f"  {name:10s} whole command {seconds:.1f} s")
    finally:
        server.send_signal(2)
        server.wait(timeout=30)
        log.close()
        if args.engine == "postgresql":
            import psycopg
            from psycopg import sql

            with psycopg.connect(args.pg_url, autocommit=True) as admin:
                for (name,) in admin.execute(
                    "SELECT datname FROM pg_database WHERE datname LIKE %s", [prefix + "%"]
                ).fetchall():
                    admin.execute(
                        sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name))
                    )
                for (name,) in admin.execute(
                    "SELECT rolname FROM pg_roles WHERE rolname LIKE %s", [prefix + "%"]
                ).fetchall():
                    admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


if __name__ == "__main__":
    main()
