"""Benchmark: 1,000 tenants on one PostgreSQL server (issue 13).

A fresh catalog and N tenants (each with a read API key and 3 products; the first with
50 orders of 3 lines), provisioned by 2 processes; then `oxygis serve --workers 2`
(bench/scale_settings.py: the service plus one bare Django view) and 4 client threads,
each on its own persistent HTTPS connection, sending GET /api/v1/products with the Host
header of the tenant they serve. Printed, as ratios measured in the same run:

* tenant #1 alone, before the workers served every tenant, then strict round-robin
  passes over all tenants (every request a tenant other than the last) taken in turn
  with blocks of tenant #1 (p50/p95; the target is their ratio);
* the same through PgBouncer when it is installed (scripts/ensure-pgbouncer), reached
  through its Unix socket (PgBouncer beside the web host), over TCP, or both (--pooler-via);
* PostgreSQL sessions held (sampled every 50 ms) against the budget,
  workers x (OXYGIS_CATALOG_CONNECTIONS + OXYGIS_TENANT_CONNECTIONS);
* worker RSS after 10 tenants served and after all of them;
* the API's order list against the bare Django view serving the same JSON;
* `tenant migrate --all` with nothing to do, per tenant (1 and 2 jobs);
* one backup worker pass with nothing due, at N tenants and at 10,000 (catalog rows
  only for the extra ones: what the schedule decides on).

Not a test: record the figures, with the machine, in bench/README.md.

    python bench/scale.py [--tenants 1000] [--requests 600] [--rounds 6] [--pooler-via both]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
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
from bench.provision import percentile  # noqa: E402
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
    from oxygis.platform.provisioning import provision_tenant
    from oxygis.sales import services
    from oxygis.sales.models import Contact, Product
    from oxygis.tenancy.databases import tenant_context

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
def run(argv: list[str], env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(
        argv,
        env=os.environ if env is None else env,
        capture_output=True,
        text=True,
        check=False,
        **kwargs,
    )
    if done.returncode:
        raise SystemExit(f"{' '.join(argv[:4])} failed:\n{done.stderr[-3000:]}")
    return done


def wait_listening(port: int, seconds: float, failure: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(failure)


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
        wait_listening(self.port, 120, f"the server did not start: see {var / 'serve.log'}")
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
    """The most sessions the service held at once (catalog and tenants: on the server,
    or, through a pooler, the catalog's on the server and the tenants' on PgBouncer),
    and the most the server had for the bench's databases."""

    def __init__(self, pg_url: str, prefix: str, pooler=None):
        super().__init__(daemon=True)
        import psycopg

        self.conn = psycopg.connect(pg_url, autocommit=True)
        self.prefix, self.pooler = prefix, pooler
        self.peak = self.peak_server = 0
        self.failure: Exception | None = None
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            self._sample()
        except Exception as exc:  # a sampler that died would under-report: say so at stop
            self.failure = exc

    def _sample(self) -> None:
        while not self.stopping.is_set():
            catalog, everything = self.conn.execute(
                "SELECT count(*) FILTER (WHERE datname = %s), count(*) FROM pg_stat_activity"
                " WHERE starts_with(datname, %s) AND pid <> pg_backend_pid()"
                # Autovacuum workers also name the database they visit: not sessions.
                " AND backend_type = 'client backend'",
                [f"{self.prefix}catalog", self.prefix],
            ).fetchone()
            held = everything if self.pooler is None else catalog + self.pooler.clients()
            self.peak, self.peak_server = max(self.peak, held), max(self.peak_server, everything)
            time.sleep(0.05)

    def stop(self) -> tuple[int, int]:
        self.stopping.set()
        self.join()
        self.conn.close()
        if self.failure is not None:
            raise SystemExit(f"the connection sampler failed: {self.failure}")
        return self.peak, self.peak_server


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


PG_BIN = Path("/usr/lib/postgresql/15/bin")


class OwnPostgres:
    """A PostgreSQL instance of the bench's own (initdb in a scratch folder), so that
    max_connections can hold a warm session per tenant behind PgBouncer without
    touching the machine's server."""

    def __init__(self, max_connections: int):
        self.folder = Path(tempfile.mkdtemp(prefix="oxygis-bench-pg-"))
        self.port = free_port()
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
        if self.as_postgres:
            shutil.chown(self.folder, "postgres")
        data = self.folder / "data"
        run([*self.as_postgres, str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust"])
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} "
            f"-c max_connections={max_connections} -c fsync=off"
        )
        run(
            [
                *self.as_postgres,
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(data),
                "-w",
                "-o",
                options,
                "-l",
                str(self.folder / "log"),
                "start",
            ],
        )
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        pg_ctl = [*self.as_postgres, str(PG_BIN / "pg_ctl"), "-D", str(self.folder / "data")]
        run([*pg_ctl, "-m", "immediate", "stop"])
        shutil.rmtree(self.folder, ignore_errors=True)


PGBOUNCER = """\
[databases]
* = host=127.0.0.1 port={pg_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir = {folder}
unix_socket_mode = 0700
auth_type = scram-sha-256
auth_file = {folder}/userlist.txt
admin_users = bench_console
pool_mode = session
server_reset_query = DISCARD ALL
server_idle_timeout = 600
; session mode: every client session holds a server one, so a pool must hold all the
; service's sessions to one database (at most the sum of the budgets)
default_pool_size = 100
max_client_conn = 1000
logfile = {folder}/pgbouncer.log
pidfile = {folder}/pgbouncer.pid
"""


CONSOLE_SECRET = secrets.token_urlsafe(16)  # the bench's throwaway PgBouncer console


class OwnPgBouncer:
    """PgBouncer in session mode in front of ``pg``; the tenant roles' SCRAM verifiers in
    its auth_file (PgBouncer 1.18 would run auth_query in each tenant database, one more
    server session per tenant)."""

    def __init__(self, admin, pg_port: int, prefix: str):
        self.folder = Path(tempfile.mkdtemp(prefix="oxygis-bench-pgbouncer-"))
        self.port = free_port()
        rows = admin.execute(
            "SELECT usename, passwd FROM pg_shadow WHERE starts_with(usename, %s)", [prefix]
        ).fetchall()
        lines = [f'"{name}" "{verifier}"' for name, verifier in rows]
        lines.append(f'"bench_console" "{CONSOLE_SECRET}"')
        (self.folder / "userlist.txt").write_text("\n".join(lines) + "\n")
        (self.folder / "pgbouncer.ini").write_text(
            PGBOUNCER.format(pg_port=pg_port, port=self.port, folder=self.folder)
        )
        command = [shutil.which("pgbouncer") or "pgbouncer", str(self.folder / "pgbouncer.ini")]
        if os.getuid() == 0:
            for path in [self.folder, *self.folder.iterdir()]:
                shutil.chown(path, "postgres")
            command[1:1] = ["-u", "postgres"]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_listening(self.port, 10, "pgbouncer did not start")
        self.console = None

    def address(self, via: str) -> str:
        """OXYGIS_DATABASE_POOLER for reaching it over TCP ("tcp") or its Unix socket
        ("socket": PgBouncer beside the web host, docs/operations.md)."""
        host = "127.0.0.1" if via == "tcp" else str(self.folder)
        return f"{host}:{self.port}"

    def clients(self) -> int:
        """Client sessions PgBouncer holds for tenant databases (the service's side), over
        one console session kept open (a new one per sample would load the machine)."""
        import psycopg

        if self.console is None:
            self.console = psycopg.connect(
                f"host=127.0.0.1 port={self.port} dbname=pgbouncer user=bench_console",
                password=CONSOLE_SECRET,
                autocommit=True,
                prepare_threshold=None,  # the console takes no prepared statement
            )
        cursor = self.console.execute("SHOW CLIENTS")
        at = [c.name for c in cursor.description].index("database")
        return sum(1 for row in cursor.fetchall() if row[at] != "pgbouncer")

    def stop(self) -> None:
        if self.console is not None:
            self.console.close()
        self.process.terminate()
        self.process.wait(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)


def serving_phases(env, var, tenants, args, pg_url, prefix, *, pooler=None, via="") -> dict:
    """Tenant #1, 10 tenants, round-robin over all, tenant #1 again; what the service
    held meanwhile. With ``pooler``, through it (a first round-robin pass warms it),
    ``via`` "tcp" or "socket"."""
    if pooler is not None:
        env = {**env, "OXYGIS_DATABASE_POOLER": pooler.address(via)}
    server = Server(env, var)
    sampler = ConnectionSampler(pg_url, prefix, pooler=pooler)
    sampler.start()
    out = {}
    first = tenants[0]
    products = "/api/v1/products"
    single = [(first["slug"], first["token"], products)]
    everyone = [(t["slug"], t["token"], products) for t in tenants]
    try:
        if pooler is not None:
            load(server, everyone)  # PgBouncer opens a server session per tenant
        load(server, single * 50)  # warm-up
        out["single_before"] = summary(load(server, single * args.requests))
        ten = [(t["slug"], t["token"], products) for t in tenants[:10]]
        load(server, ten * (args.requests // 10))
        out["rss_10"] = server.workers_rss()
        # Round-robin passes and blocks of tenant #1 taken in turn (A/B/A/B), so that
        # the machine's noise falls on both alike: their ratio is the figure.
        robin, after, paired = [], [], []
        for _ in range(args.rounds):
            one_pass = load(server, everyone)
            block = load(server, single * (args.requests // args.rounds))
            robin, after = robin + one_pass, after + block
            paired.append(statistics.median(one_pass) / statistics.median(block))
        out["round_robin"], out["single_after"] = summary(robin), summary(after)
        # Each pass against the block right after it: the machine's drift over the run
        # (other processes, CPU frequency) falls on both halves of a pair.
        out["paired_ratios"] = paired
        out["rss_all"] = server.workers_rss()
        if pooler is None:
            # The API list against the bare view, alternating A/B/A/B.
            api, bare = [], []
            for _ in range(2):
                api += load(server, [(first["slug"], first["token"], "/api/v1/orders")] * 200)
                bare += load(server, [(first["slug"], first["token"], "/bare/orders")] * 200)
            out["api_list"], out["bare_list"] = summary(api), summary(bare)
    finally:
        out["peak_connections"], out["peak_server_sessions"] = sampler.stop()
        server.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=600, help="per single-tenant phase")
    parser.add_argument("--rounds", type=int, default=6, help="round-robin passes")
    parser.add_argument(
        "--pooler-via",
        choices=["socket", "tcp", "both"],
        default="socket",
        help="reach PgBouncer through its Unix socket (beside the web host), TCP, or both",
    )
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

    # Room for PgBouncer's warm session per tenant, and the service's budget beside.
    pg = OwnPostgres(max_connections=args.tenants + 200)
    var = Path(tempfile.mkdtemp(prefix="oxygis-bench-scale-"))
    prefix = "oxybench_"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OXYGIS_")}
    env |= {
        "OXYGIS_VAR_DIR": str(var),
        "OXYGIS_DB_PREFIX": prefix,
        "OXYGIS_DATABASE_URL": pg.url.rsplit("/", 1)[0] + f"/{prefix}catalog",
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    admin = psycopg.connect(pg.url, autocommit=True)
    admin.execute(f'CREATE DATABASE "{prefix}catalog"')
    oxygis = [sys.executable, "-m", "oxygis.cli"]
    results: dict = {"tenants": args.tenants}
    pooler = None
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

        results["direct"] = serving_phases(env, var, tenants, args, pg.url, prefix)
        print("direct:", json.dumps(results["direct"]))
        if shutil.which("pgbouncer"):
            pooler = OwnPgBouncer(admin, pg.port, prefix)
            ways = ["socket", "tcp"] if args.pooler_via == "both" else [args.pooler_via]
            for via in ways:
                results[f"pgbouncer ({via})"] = serving_phases(
                    env, var, tenants, args, pg.url, prefix, pooler=pooler, via=via
                )
                print(f"pgbouncer ({via}):", json.dumps(results[f"pgbouncer ({via})"]))
        results["budget"] = 2 * (
            int(os.environ.get("OXYGIS_CATALOG_CONNECTIONS", 4))
            + int(os.environ.get("OXYGIS_TENANT_CONNECTIONS", 10))
        )
        for extra in (0, 10_000 - len(tenants) - 1):
            out = run([sys.executable, __file__, "--child", "worker", str(extra)], env)
            passed = json.loads(out.stdout.strip().splitlines()[-1])
            results[f"worker_pass_{passed['targets']}"] = statistics.median(passed["seconds"])
    finally:
        admin.close()
        if pooler is not None:
            pooler.stop()
        pg.stop()
        shutil.rmtree(var, ignore_errors=True)
    report(results)


def report(r: dict) -> None:
    print(json.dumps(r, indent=1))
    print(f"\n{r['tenants']} tenants")
    for mode in ("direct", "pgbouncer (socket)", "pgbouncer (tcp)"):
        if mode not in r:
            continue
        m = r[mode]
        s, a, rr = m["single_before"], m["single_after"], m["round_robin"]
        print(f"\n{mode}:")
        print(f"{'phase':<34} {'p50 ms':>8} {'p95 ms':>8} {'n':>6}")
        rows = [
            ("tenant #1, before", s),
            ("round-robin, every tenant", rr),
            ("tenant #1, in turn with round-robin", a),
        ]
        if "api_list" in m:
            rows += [
                ("API order list (50 x 3 lines)", m["api_list"]),
                ("bare Django view, same JSON", m["bare_list"]),
            ]
        for label, row in rows:
            print(f"{label:<34} {row['p50']:8.2f} {row['p95']:8.2f} {row['n']:6d}")
        p50, p95 = rr["p50"] / a["p50"], rr["p95"] / a["p95"]
        print(f"round-robin / tenant #1 (taken in turn) p50: {p50:.2f}x, p95 {p95:.2f}x")
        paired = sorted(m["paired_ratios"])
        print(
            f"  each pass / the block after it, p50: median {statistics.median(paired):.2f}x"
            f" ({paired[0]:.2f}-{paired[-1]:.2f} over {len(paired)} pairs)"
        )
        print(f"round-robin / tenant #1 before p50: {rr['p50'] / s['p50']:.2f}x")
        print(f"tenant #1 after / before p50: {a['p50'] / s['p50']:.2f}x")
        if "api_list" in m:
            print(f"API list / bare view p50: {m['api_list']['p50'] / m['bare_list']['p50']:.2f}x")
        print(
            f"sessions the service held at most: {m['peak_connections']} (budget {r['budget']});"
            f" the server had at most {m['peak_server_sessions']}"
        )
        rss10, rss_all = sum(m["rss_10"]), sum(m["rss_all"])
        print(
            f"workers' RSS: {rss10 / 1024:.1f} MiB after 10 tenants, {rss_all / 1024:.1f} MiB"
            f" after all ({rss_all / rss10:.2f}x)"
        )
    print()
    for jobs in (1, 2):
        per = r[f"migrate_all_jobs{jobs}"]
        print(
            f"migrate --all --jobs {jobs}: {per * 1000:.1f} ms per tenant"
            f" ({per * 10_000 / 60:.1f} min at 10,000)"
        )
    for key in sorted((k for k in r if k.startswith("worker_pass_")), key=lambda k: int(k[12:])):
        print(f"worker pass with nothing due, {key[12:]} targets: {r[key]:.2f} s")


if __name__ == "__main__":
    main()
