"""Benchmark: what the access layer costs on the order list page and the API list.

A PostgreSQL tenant with 10,000 orders (half of them the salesperson's), gunicorn with
2 workers over HTTPS, 4 client threads. Each target is measured as the Salesperson
through the access layer, and with the layer bypassed (bench/bypass_settings.py),
alternating A/B/A/B; the medians and the overhead ratio are printed. Not a test: record
the figures, with the machine, in bench/README.md.

    python bench/requests.py [--orders 10000] [--requests 400] [--pg-url ...]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.client import HTTPConnection
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "Bench-Seller-2026!"


def setup_data(orders: int) -> dict:
    """Runs in a child process: tenant, users, orders, API key. Prints JSON."""
    import django

    django.setup()
    from decimal import Decimal

    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command

    from oxygis.access.actors import system
    from oxygis.accounts.apikeys import issue_key
    from oxygis.platform.provisioning import provision_tenant
    from oxygis.sales.models import Contact, Order, OrderLine, OrderSequence
    from oxygis.tenancy.databases import tenant_context

    call_command("migrate", verbosity=0, interactive=False)
    made = provision_tenant("bench", name="Bench Ltd", plan="paid")
    with tenant_context(made.tenant), system(reason="benchmark data"):
        User = get_user_model()
        seller = User.objects.create(username="seller", email="seller@bench.example")
        seller.set_password(PASSWORD)
        seller.save()
        other = User.objects.create(username="other", email="other@bench.example")
        for user in (seller, other):
            user.groups.add(Group.objects.get(name="Salesperson"))
        customers = Contact.objects.bulk_create(
            Contact(name=f"Customer {i}", email=f"c{i}@bench.example") for i in range(200)
        )
        batch = []
        for i in range(orders):
            batch.append(
                Order(
                    number=f"SO{i + 1:05d}",
                    customer=customers[i % 200],
                    salesperson=seller if i % 2 == 0 else other,
                    amount_untaxed=Decimal("100.00"),
                    amount_tax=Decimal("21.00"),
                    amount_total=Decimal("121.00"),
                )
            )
        Order.objects.bulk_create(batch, batch_size=1000)
        OrderLine.objects.bulk_create(
            (
                OrderLine(
                    order=o,
                    description="Item",
                    unit_price=Decimal("100.00"),
                    subtotal=Decimal("100.00"),
                )
                for o in Order.objects.all()
            ),
            batch_size=1000,
        )
        OrderSequence.objects.create(pk=1, next_number=orders + 1)
        _, token = issue_key(seller, name="bench", scope="read", days=1)
    return {"token": token}


class Server:
    def __init__(self, var: Path, settings_module: str, port: int):
        self.port = port
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": settings_module,
            "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "oxygis.cli",
                "serve",
                "--port",
                str(port),
                "--workers",
                "2",
                "--no-demo",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise SystemExit("server did not start")
        self.context = ssl.create_default_context(cafile=str(var / "tls" / "ca.pem"))

    def request(self, path, *, method="GET", body=None, headers=None):
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        sock = self.context.wrap_socket(raw, server_hostname="bench.localhost")
        conn = HTTPConnection("bench.localhost", self.port)
        conn.sock = sock
        conn.request(
            method,
            path,
            body=body,
            headers={"Host": f"bench.localhost:{self.port}", **(headers or {})},
        )
        response = conn.getresponse()
        data = response.read()
        sock.close()
        return response, data

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)


def sign_in(server: Server) -> str:
    page, html = server.request("/accounts/login/")
    csrf = re.search(r"__Host-oxygis_csrf=([^;]+)", page.getheader("Set-Cookie"))[1]
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', html)[1].decode()
    response, _ = server.request(
        "/accounts/login/",
        method="POST",
        body=urlencode({"username": "seller", "password": PASSWORD, "csrfmiddlewaretoken": token}),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"__Host-oxygis_csrf={csrf}",
            "Origin": f"https://bench.localhost:{server.port}",
        },
    )
    cookies = response.getheader("Set-Cookie") or ""
    return re.search(r"__Host-oxygis_session=([^;]+)", cookies)[1]


def load(server: Server, path: str, headers: dict, total: int, threads: int = 4) -> dict:
    latencies: list[float] = []
    errors = []
    lock = threading.Lock()

    def worker(count):
        for _ in range(count):
            start = time.perf_counter()
            response, _ = server.request(path, headers=headers)
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                if response.status != 200:
                    errors.append(response.status)

    for _ in range(10):  # warm-up
        server.request(path, headers=headers)
    began = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(total // threads,)) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    wall = time.perf_counter() - began
    if errors:
        raise SystemExit(f"{path}: {len(errors)} errors, e.g. HTTP {errors[0]}")
    latencies.sort()
    return {"rps": len(latencies) / wall, "p95": latencies[int(0.95 * (len(latencies) - 1))]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=400, help="per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="A/B rounds")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--setup-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.setup_child is not None:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "oxygis.settings")
        print(json.dumps(setup_data(args.setup_child)))
        return

    import psycopg
    from psycopg import sql

    var = Path(tempfile.mkdtemp(prefix="oxygis-bench-"))
    os.environ.update(
        {"OXYGIS_VAR_DIR": str(var), "OXYGIS_DB_PREFIX": "oxybenchr_", "OXYGIS_ENV": "test"}
    )
    admin = psycopg.connect(args.pg_url, autocommit=True)

    def sweep():
        for (name,) in admin.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, 'oxybenchr_')"
        ).fetchall():
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        for (name,) in admin.execute(
            "SELECT rolname FROM pg_roles WHERE starts_with(rolname, 'oxybenchr_')"
        ).fetchall():
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))

    sweep()
    admin.execute('CREATE DATABASE "oxybenchr_catalog"')
    os.environ["OXYGIS_DATABASE_URL"] = args.pg_url.rsplit("/", 1)[0] + "/oxybenchr_catalog"
    try:
        print(f"setting up a tenant with {args.orders} orders ...", flush=True)
        out = subprocess.run(
            [sys.executable, __file__, "--setup-child", str(args.orders)],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode:
            raise SystemExit(out.stderr)
        token = json.loads(out.stdout.strip().splitlines()[-1])["token"]
        results: dict[tuple[str, str], list[dict]] = {}
        for _ in range(args.rounds):
            for mode, module in (("layer", "oxygis.settings"), ("bypass", "bench.bypass_settings")):
                server = Server(var, module, 18600 + len(results))
                try:
                    session = sign_in(server)
                    targets = {
                        "order list page": (
                            "/sales/orders/",
                            {"Cookie": f"__Host-oxygis_session={session}"},
                        ),
                        "API list (50 rows)": (
                            "/api/v1/orders?limit=50",
                            {"Authorization": f"Bearer {token}"},
                        ),
                    }
                    for name, (path, headers) in targets.items():
                        results.setdefault((name, mode), []).append(
                            load(server, path, headers, args.requests)
                        )
                finally:
                    server.stop()
        print(f"{'target':<20} {'mode':<7} {'req/s':>7} {'p95 ms':>8}")
        for name in ("order list page", "API list (50 rows)"):
            medians = {}
            for mode in ("layer", "bypass"):
                runs = results[(name, mode)]
                rps = statistics.median(r["rps"] for r in runs)
                p95 = statistics.median(r["p95"] for r in runs)
                medians[mode] = (rps, p95)
                print(f"{name:<20} {mode:<7} {rps:7.1f} {p95 * 1000:8.1f}")
            overhead = medians["bypass"][0] / medians["layer"][0] - 1
            p95_ratio = medians["layer"][1] / medians["bypass"][1]
            print(f"{name:<20} overhead: throughput {overhead:+.1%}, p95 x{p95_ratio:.2f}")
    finally:
        sweep()
        admin.close()


if __name__ == "__main__":
    main()
