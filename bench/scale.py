"""Benchmark: 1,000 tenants on one PostgreSQL server (issue 13).

A fresh catalog and N tenants (each with a read API key and 3 products; the first with
50 orders of 3 lines), provisioned by 2 processes; then `oxygis serve --workers 2`
(bench/scale_settings.py: the service plus one bare Django view) and 4 client threads,
each on its own persistent HTTPS connection, sending GET /api/v1/products with the Host
header of the tenant they serve. Printed, as ratios measured in the same run:

* tenant #1 alone, before and after the workers served every tenant, and strict
  round-robin over all tenants (p50/p95; every request a tenant other than the last);
* PostgreSQL sessions held (sampled every 20 ms) against the budget,
  workers x (OXYGIS_CATALOG_CONNECTIONS + OXYGIS_TENANT_CONNECTIONS);
* worker RSS after 10 tenants served and after all of them;
* the API's order list against the bare Django view serving the same JSON;
* `tenant migrate --all` with nothing to do, per tenant (1 and 2 jobs);
* one backup worker pass with nothing due, at N tenants and at 10,000 (catalog rows
  only for the extra ones: what the schedule decides on).

Not a test: record the figures, with the machine, in bench/README.md.

    python bench/scale.py [--tenants 1000] [--requests 600] [--pg-url ...]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.client import HTTPSConnection
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # bench.* (run as a script)
from bench.provision import _pg_sweep, percentile  # noqa: E402
from bench.swaps import free_port  # noqa: E402

CLIENTS = 4


# --- children (run with the bench's environment) -------------------------------------
def child_provision(start: int, count: int) -> None:
    """Provision tenants start..start+count-1; one JSON line per tenant."""
    import django

    django.setup()
    from decimal import Decimal

    from django.contrib.auth import get_user_model

    from oxygis.access.actors import system
    from oxygis.accounts.apikeys import issue_key
    from oxygis.sales import services
    from oxygis.sales.models import Contact, Product
    from oxygis.tenancy.databases import tenant_context
    from oxygis.tenancy.provisioning import provision_tenant

    for i in range(start, start + count):
        made = provision_tenant(f"scale-{i:05d}", name=f"Scale {i}", plan="paid")
        with tenant_context(made.tenant), system(reason="benchmark data"):
            admin = get_user_model().objects.get(username="admin")
            _, token = issue_key(admin, name="bench", scope="read", days=2)
            products = [
                Product.objects.create(
                    name=f"Product {n}", sku=f"SKU-{n}", unit_price=Decimal("10.00") * n
                )
                for n in (1, 2, 3)
            ]
            if i == 0:
                customer = Contact.objects.create(name="Bench Customer")
                for _ in range(50):
                    services.create_order(
                        customer=customer,
                        salesperson=admin,
                        currency="EUR",
                        lines=[
                            services.LineInput(
                                description=p.name,
                                quantity=Decimal(1),
                                unit_price=p.unit_price,
                                tax_rate=p.tax_rate,
                                product=p,
                            )
                            for p in products
                        ],
                    )
        print(json.dumps({"slug": made.tenant.slug, "token": token}), flush=True)


def child_worker_pass(extra: int) -> None:
    """Time worker passes with nothing due (good backups everywhere), after adding
    ``extra`` catalog-only tenants."""
    import django

    django.setup()
    from django.utils import timezone

    from oxygis.backups.models import Backup
    from oxygis.backups.service import all_targets
    from oxygis.backups.worker import Worker
    from oxygis.tenancy.databases import default_server
    from oxygis.tenancy.models import Plan, Tenant

    if extra:
        plan, server = Plan.objects.get(code="paid"), default_server()
        prefix = os.environ["OXYGIS_DB_PREFIX"]
        Tenant.objects.bulk_create(
            Tenant(
                slug=f"synthetic-{i:05d}",
                name=f"Synthetic {i}",
                plan=plan,
                state=Tenant.ACTIVE,
                database_server=server,
                db_name=f"{prefix}synthetic_{i}",
            )
            for i in range(extra)
        )
    now = timezone.now()
    known = set(Backup.objects.values_list("target", flat=True))
    Backup.objects.bulk_create(
        Backup(
            target=t.key,
            label=t.label,
            engine="postgresql",
            database="bench",
            state=Backup.GOOD,
            started_at=now,
        )
        for t in all_targets()
        if t.key not in known
    )
    worker = Worker(restore_tests=False)
    times = []
    for _ in range(3):
        began = time.perf_counter()
        worker.tick()
        times.append(time.perf_counter() - began)
    print(json.dumps({"targets": len(all_targets()), "seconds": times}))


# --- the parent ------------------------------------------------------------------------
def run(argv: list[str], env: dict, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, **kwargs)
    if done.returncode:
        raise SystemExit(f"{' '.join(argv[:4])} failed:\n{done.stderr[-3000:]}")
    return done


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found.append(child)
            todo.append(child)
    return found


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Server:
    def __init__(self, env: dict, var: Path):
        self.port = free_port()
        self.log = open(var / "serve.log", "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "oxygis.cli",
                "serve",
                "--port",
                str(self.port),
                "--workers",
                "2",
                "--no-worker",
                "--no-demo",
            ],
            env={**env, "DJANGO_SETTINGS_MODULE": "bench.scale_settings"},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.3)
        else:
            raise SystemExit(f"the server did not start: see {var / 'serve.log'}")
        self.context = ssl.create_default_context(cafile=str(var / "tls" / "ca.pem"))

    def connection(self) -> HTTPSConnection:
        # One certificate (the default one, for "localhost") and the tenant in the Host
        # header: what a TLS proxy in front of many tenants looks like to the workers.
        return HTTPSConnection("localhost", self.port, context=self.context, timeout=60)

    def workers_rss(self) -> list[int]:
        """RSS (KiB) of the web server's worker processes (the largest descendants)."""
        sizes = sorted((rss_kib(pid) for pid in descendants(self.process.pid)), reverse=True)
        return sizes[:2]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


class ConnectionSampler(threading.Thread):
    """The most sessions the service held on the server at once (catalog and tenants)."""

    def __init__(self, pg_url: str, prefix: str):
        super().__init__(daemon=True)
        import psycopg

        self.conn = psycopg.connect(pg_url, autocommit=True)
        self.prefix, self.peak, self.stopping = prefix, 0, threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            (count,) = self.conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE starts_with(datname, %s) AND pid <> pg_backend_pid()"
                " AND application_name <> 'oxygis-backup'",
                [self.prefix],
            ).fetchone()
            self.peak = max(self.peak, count)
            time.sleep(0.02)

    def stop(self) -> int:
        self.stopping.set()
        self.join()
        self.conn.close()
        return self.peak


def load(server: Server, jobs: list[tuple[str, str, str]]) -> list[float]:
    """Send each (slug, token, path) once, in order, over CLIENTS persistent connections
    (a shared cursor: consecutive requests go to consecutive jobs). Latencies, seconds."""
    latencies, errors, lock = [], [], threading.Lock()
    cursor = iter(range(len(jobs)))

    def client():
        conn = server.connection()
        while True:
            with lock:
                index = next(cursor, None)
            if index is None:
                break
            slug, token, path = jobs[index]
            began = time.perf_counter()
            conn.request(
                "GET",
                path,
                headers={
                    "Host": f"{slug}.localhost:{server.port}",
                    "Authorization": f"Bearer {token}",
                },
            )
            response = conn.getresponse()
            body = response.read()
            elapsed = time.perf_counter() - began
            with lock:
                if response.status != 200:
                    errors.append(f"{slug}{path}: HTTP {response.status} {body[:120]!r}")
                latencies.append(elapsed)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise SystemExit(f"{len(errors)} failed requests, e.g. {errors[0]}")
    return latencies


def summary(latencies: list[float]) -> dict:
    return {
        "p50": statistics.median(latencies) * 1000,
        "p95": percentile(latencies, 0.95) * 1000,
        "n": len(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=600, help="per single-tenant phase")
    parser.add_argument("--rounds", type=int, default=3, help="round-robin passes")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "oxygis.settings")
        if args.child[0] == "provision":
            child_provision(int(args.child[1]), int(args.child[2]))
        else:
            child_worker_pass(int(args.child[1]))
        return

    import psycopg

    var = Path(tempfile.mkdtemp(prefix="oxygis-bench-scale-"))
    prefix = "oxybench_"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OXYGIS_")}
    env |= {
        "OXYGIS_VAR_DIR": str(var),
        "OXYGIS_DB_PREFIX": prefix,
        "OXYGIS_DATABASE_URL": args.pg_url.rsplit("/", 1)[0] + f"/{prefix}catalog",
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    admin = psycopg.connect(args.pg_url, autocommit=True)
    _pg_sweep(admin)
    admin.execute(f'CREATE DATABASE "{prefix}catalog"')
    max_connections = int(admin.execute("SHOW max_connections").fetchone()[0])
    oxygis = [sys.executable, "-m", "oxygis.cli"]
    results: dict = {"tenants": args.tenants, "max_connections": max_connections}
    try:
        run([*oxygis, "migrate", "--verbosity", "0"], env)
        began = time.perf_counter()
        halves = [(0, args.tenants // 2), (args.tenants // 2, args.tenants - args.tenants // 2)]
        children = [
            subprocess.Popen(
                [sys.executable, __file__, "--child", "provision", str(start), str(count)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for start, count in halves
        ]
        tenants = []
        for child in children:
            out, err = child.communicate()
            if child.returncode:
                raise SystemExit(f"provisioning failed:\n{err[-3000:]}")
            tenants += [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        tenants.sort(key=lambda t: t["slug"])
        results["provision_seconds"] = time.perf_counter() - began
        print(f"provisioned {len(tenants)} tenants in {results['provision_seconds']:.0f} s")

        # Fleet: nothing to apply. The command's own figure (its last line), without
        # the start of the process (Django's set-up, ~1 s, once per run).
        for jobs in (1, 2):
            out = run([*oxygis, "tenant", "migrate", "--all", "--jobs", str(jobs)], env)
            seconds = float(out.stdout.strip().splitlines()[-1].split(" in ")[1].split()[0])
            results[f"migrate_all_jobs{jobs}"] = seconds / len(tenants)

        server = Server(env, var)
        sampler = ConnectionSampler(args.pg_url, prefix)
        sampler.start()
        try:
            first = tenants[0]
            products = "/api/v1/products"
            load(server, [(first["slug"], first["token"], products)] * 50)  # warm-up
            results["single_before"] = summary(
                load(server, [(first["slug"], first["token"], products)] * args.requests)
            )
            ten = [(t["slug"], t["token"], products) for t in tenants[:10]]
            load(server, ten * (args.requests // 10))
            results["rss_10"] = server.workers_rss()
            everyone = [(t["slug"], t["token"], products) for t in tenants]
            results["round_robin"] = summary(load(server, everyone * args.rounds))
            results["rss_all"] = server.workers_rss()
            results["single_after"] = summary(
                load(server, [(first["slug"], first["token"], products)] * args.requests)
            )
            # The API list against the bare view, alternating A/B/A/B.
            api, bare = [], []
            for _ in range(2):
                api += load(server, [(first["slug"], first["token"], "/api/v1/orders")] * 200)
                bare += load(server, [(first["slug"], first["token"], "/bare/orders")] * 200)
            results["api_list"], results["bare_list"] = summary(api), summary(bare)
        finally:
            results["peak_connections"] = sampler.stop()
            server.stop()
        catalog = int(os.environ.get("OXYGIS_CATALOG_CONNECTIONS", 4))
        tenant = int(os.environ.get("OXYGIS_TENANT_CONNECTIONS", 10))
        results["budget"] = 2 * (catalog + tenant)

        for extra in (0, 10_000 - len(tenants) - 1):
            out = run([sys.executable, __file__, "--child", "worker", str(extra)], env)
            passed = json.loads(out.stdout.strip().splitlines()[-1])
            results[f"worker_pass_{passed['targets']}"] = statistics.median(passed["seconds"])
    finally:
        if not args.keep:
            _pg_sweep(admin)
        admin.close()
    report(results)


def report(r: dict) -> None:
    print(json.dumps(r, indent=1))
    s, a, rr = r["single_before"], r["single_after"], r["round_robin"]
    print(f"\n{r['tenants']} tenants; max_connections {r['max_connections']}")
    print(f"{'phase':<34} {'p50 ms':>8} {'p95 ms':>8} {'n':>6}")
    for label, row in [
        ("tenant #1, before", s),
        ("round-robin, every tenant", rr),
        ("tenant #1, after all were served", a),
        ("API order list (50 x 3 lines)", r["api_list"]),
        ("bare Django view, same JSON", r["bare_list"]),
    ]:
        print(f"{label:<34} {row['p50']:8.2f} {row['p95']:8.2f} {row['n']:6d}")
    print(f"round-robin / single p50: {rr['p50'] / s['p50']:.2f}x, p95 {rr['p95'] / s['p95']:.2f}x")
    print(f"tenant #1 after / before p50: {a['p50'] / s['p50']:.2f}x")
    print(f"API list / bare view p50: {r['api_list']['p50'] / r['bare_list']['p50']:.2f}x")
    print(f"sessions held at most: {r['peak_connections']} (budget {r['budget']})")
    rss10, rss_all = sum(r["rss_10"]), sum(r["rss_all"])
    print(
        f"workers' RSS: {rss10 / 1024:.1f} MiB after 10 tenants, {rss_all / 1024:.1f} MiB after"
        f" all ({rss_all / rss10:.2f}x)"
    )
    for jobs in (1, 2):
        per = r[f"migrate_all_jobs{jobs}"]
        print(
            f"migrate --all --jobs {jobs}: {per * 1000:.1f} ms per tenant"
            f" ({per * 10_000 / 60:.1f} min at 10,000)"
        )
    for key in sorted(k for k in r if k.startswith("worker_pass_")):
        print(
            f"worker pass with nothing due, {key.removeprefix('worker_pass_')} targets:"
            f" {r[key]:.2f} s"
        )


if __name__ == "__main__":
    main()
