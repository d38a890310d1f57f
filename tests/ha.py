"""A real high-availability PostgreSQL cluster on loopback, for tests and bench/failover.py:
three etcd members and two Patroni nodes (PostgreSQL 15, a primary and a synchronous
standby), each with its own data folder and ports. Started and stopped here; nothing
of the machine's own PostgreSQL is touched.

Debian's ``patroni`` and ``etcd-server`` (scripts/ensure-patroni). PostgreSQL refuses to
run as root: when the tests run as root, etcd and Patroni run as ``postgres``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import psycopg

from tests.served import WRITER_SETUP, Served, Writers, free_port, oxygis

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SCOPE = "oxyha"

PATRONI = """\
scope: {scope}
name: {name}
restapi:
  listen: 127.0.0.1:{rest}
  connect_address: 127.0.0.1:{rest}
etcd3:
  hosts: {etcd}
bootstrap:
  dcs:
    ttl: 20
    loop_wait: 1
    retry_timeout: 5
    maximum_lag_on_failover: 0
    primary_start_timeout: 0
    master_start_timeout: 0
    synchronous_mode: true
    postgresql:
      use_pg_rewind: true
      parameters:
        max_connections: 200
        wal_level: replica
        hot_standby: "on"
        wal_log_hints: "on"
        max_wal_senders: 5
        max_replication_slots: 5
        synchronous_commit: "on"
        password_encryption: scram-sha-256
  initdb:
    - encoding: UTF8
    - data-checksums
postgresql:
  listen: 127.0.0.1:{port}
  connect_address: 127.0.0.1:{port}
  data_dir: {folder}/data-{name}
  bin_dir: {bin_dir}
  pgpass: {folder}/pgpass-{name}
  authentication:
    superuser:
      username: postgres
      password: {superuser}
    replication:
      username: replicator
      password: {replication}
    rewind:
      username: rewinder
      password: {rewind}
  parameters:
    unix_socket_directories: {folder}
  pg_hba:
    - local all all trust
    - host replication replicator 127.0.0.1/32 scram-sha-256
    - host all all 127.0.0.1/32 scram-sha-256
"""


def available() -> bool:
    return all(shutil.which(p) for p in ("patroni", "etcd")) and (PG_BIN / "initdb").exists()


def _get(url: str, timeout: float = 2):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http://127.0.0.1
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:  # Patroni answers 503 for "not the leader"
        status, body = exc.code, exc.read()
    except OSError:
        return None, None
    try:
        return status, json.loads(body or b"null")
    except ValueError:
        return status, None


class Cluster:
    """etcd x3 + Patroni x2. ``url(dbname)`` is the multi-host DSN of the cluster."""

    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="oxygis-ha-"))
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
        if self.as_postgres:
            shutil.chown(self.folder, "postgres")
        self.folder.chmod(0o700)
        # One set of passwords for the cluster (each node logs in to the others).
        self.superuser, self.replication, self.rewind = (
            secrets.token_urlsafe(16) for _ in range(3)
        )
        self.etcd_ports = [(free_port(), free_port()) for _ in range(3)]
        self.nodes = {f"node{i}": {"port": free_port(), "rest": free_port()} for i in (1, 2)}
        self.processes: dict[str, subprocess.Popen] = {}
        try:
            self._start_etcd()
            for name in self.nodes:
                self.start_node(name)
            self.wait_healthy(120)
        except BaseException:
            self.stop()
            raise

    # --- etcd --------------------------------------------------------------------------
    def _start_etcd(self) -> None:
        initial = ",".join(
            f"e{i}=http://127.0.0.1:{peer}" for i, (_, peer) in enumerate(self.etcd_ports)
        )
        for i, (client, peer) in enumerate(self.etcd_ports):
            self._spawn(
                f"etcd{i}",
                [
                    "etcd",
                    f"--name=e{i}",
                    f"--data-dir={self.folder}/etcd-{i}",
                    f"--listen-client-urls=http://127.0.0.1:{client}",
                    f"--advertise-client-urls=http://127.0.0.1:{client}",
                    f"--listen-peer-urls=http://127.0.0.1:{peer}",
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                    f"--initial-cluster={initial}",
                    "--initial-cluster-token=oxygis-ha",
                    "--initial-cluster-state=new",
                    "--enable-v2=true",
                ],
                {"ETCD_UNSUPPORTED_ARCH": ""},
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            client = self.etcd_ports[0][0]
            status, body = _get(f"http://127.0.0.1:{client}/health")
            if status == 200 and body and body.get("health") in ("true", True):
                return
            time.sleep(0.2)
        raise RuntimeError(f"etcd did not become healthy: {self._log_tail('etcd0')}")

    # --- Patroni -----------------------------------------------------------------------
    def start_node(self, name: str) -> None:
        node = self.nodes[name]
        config = self.folder / f"{name}.yml"
        config.write_text(
            PATRONI.format(
                scope=SCOPE,
                name=name,
                folder=self.folder,
                rest=node["rest"],
                port=node["port"],
                etcd=",".join(f"127.0.0.1:{c}" for c, _ in self.etcd_ports),
                bin_dir=PG_BIN,
                superuser=self.superuser,
                replication=self.replication,
                rewind=self.rewind,
            )
        )
        if self.as_postgres:
            shutil.chown(config, "postgres")
        config.chmod(0o600)
        self._spawn(name, ["patroni", str(config)])

    def _spawn(self, name: str, command: list[str], env: dict | None = None) -> None:
        log = open(self.folder / f"{name}.out", "ab")  # noqa: SIM115 - the child keeps it
        self.processes[name] = subprocess.Popen(
            [*self.as_postgres, *command],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # a kill of the group takes what it started
        )
        log.close()

    def _log_tail(self, name: str, size: int = 3000) -> str:
        path = self.folder / f"{name}.out"
        return path.read_text(errors="replace")[-size:] if path.exists() else "(no log)"

    def members(self) -> list[dict]:
        """Patroni's view of the cluster (name, role, state, lag), from any node."""
        for node in self.nodes.values():
            status, body = _get(f"http://127.0.0.1:{node['rest']}/cluster")
            if status == 200 and body:
                return body.get("members", [])
        return []

    def leader(self) -> str | None:
        for member in self.members():
            if (
                member.get("role") in ("leader", "master", "primary")
                and member.get("state") == "running"
            ):
                return member["name"]
        return None

    def wait_healthy(self, seconds: float) -> str:
        """Wait for a running leader and a streaming synchronous standby; the leader."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            members = self.members()
            leader = self.leader()
            sync = [
                m
                for m in members
                if m.get("role") == "sync_standby" and m.get("state") in ("running", "streaming")
            ]
            if leader and sync:
                return leader
            time.sleep(0.5)
        raise RuntimeError(
            "the cluster did not get a leader and a synchronous standby: "
            + json.dumps(self.members())
            + "\n"
            + "\n".join(self._log_tail(n, 1500) for n in self.nodes)
        )

    def postmaster_pid(self, name: str) -> int:
        return int((self.folder / f"data-{name}" / "postmaster.pid").read_text().split()[0])

    def kill_postmaster(self, name: str) -> int:
        """kill -9 the node's PostgreSQL (Patroni lives on and hands leadership over)."""
        pid = self.postmaster_pid(name)
        os.kill(pid, signal.SIGKILL)
        return pid

    def kill_node(self, name: str) -> None:
        """kill -9 the node's Patroni and PostgreSQL at once: the machine is gone."""
        pid = self.postmaster_pid(name)
        os.killpg(self.processes[name].pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        self.processes[name].wait(timeout=10)

    def url(self, dbname: str, *, user: str = "postgres", password: str | None = None) -> str:
        hosts = ",".join(f"127.0.0.1:{n['port']}" for n in self.nodes.values())
        secret = self.superuser if password is None else password
        return f"postgresql://{user}:{secret}@{hosts}/{dbname}"

    def connect(self, dbname: str = "postgres"):
        """A superuser session on the current primary."""
        return psycopg.connect(
            self.url(dbname) + "?target_session_attrs=read-write",
            autocommit=True,
            connect_timeout=5,
        )

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        for name in self.nodes:
            data = self.folder / f"data-{name}"
            if (data / "postmaster.pid").exists():  # Patroni killed: its PostgreSQL too
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(self.postmaster_pid(name), signal.SIGKILL)
        shutil.rmtree(self.folder, ignore_errors=True)


# --- Oxygis on the cluster -------------------------------------------------------------


class Platform:
    """Oxygis on ``cluster``: a catalog, one tenant with a write key, ``oxygis serve``."""

    def __init__(self, cluster: Cluster, var_dir: Path, *, workers: int = 2):
        self.cluster, self.var_dir = cluster, var_dir
        with cluster.connect() as admin:
            admin.execute("CREATE DATABASE oxyha_catalog")
        self.env = {
            "OXYGIS_VAR_DIR": str(var_dir),
            "OXYGIS_DB_PREFIX": "oxyha_",
            # Every member: libpq keeps the one accepting writes (dburl.py).
            "OXYGIS_DATABASE_URL": cluster.url("oxyha_catalog"),
        }
        for args in (
            ("migrate", "--verbosity", "0"),
            ("shell", "-c", WRITER_SETUP.format(prefix="ha-")),
        ):
            result = oxygis(*args, env=self.env)
            if result.returncode:
                raise RuntimeError(f"oxygis {args[0]} failed: {result.stderr[-2000:]}")
        self.world = json.loads(result.stdout.strip().splitlines()[-1])
        self.host = f"{self.world['slug']}.localhost"
        self.served = Served(var_dir, free_port(), workers=workers, env=self.env)

    def oxygis(self, *args):
        return oxygis(*args, env=self.env)

    def orders(self) -> set[tuple[str, str]]:
        """(number, line text) of every order in the tenant's database, on the primary."""
        with self.cluster.connect(self.world["db"]) as conn:
            return set(
                conn.execute(
                    "SELECT o.number, l.description FROM sales_order o "
                    "JOIN sales_orderline l ON l.order_id = o.id"
                ).fetchall()
            )

    def stop(self) -> None:
        if self.served.process.poll() is None:
            self.served.stop()


def failover_under_load(platform: Platform, *, kill: str = "postmaster", after: float = 8):
    """Writers create orders through the API; the primary is killed (``postmaster``: its
    PostgreSQL, kill -9; ``node``: Patroni too, the machine gone); they go on until
    writes succeed again, then ``after`` seconds more. Figures: seconds without a
    successful write (RTO), acknowledged orders missing (RPO), what clients saw."""
    cluster = platform.cluster
    old = cluster.wait_healthy(60)
    server_pid = platform.served.process.pid
    world = platform.world
    with Writers(platform.served, platform.host, world["token"], world["customer"]) as writers:
        deadline = time.monotonic() + 30
        while len(writers.acknowledged) < 30 and time.monotonic() < deadline:
            time.sleep(0.1)
        before = len(writers.acknowledged)
        killed_at = time.monotonic()
        (cluster.kill_node if kill == "node" else cluster.kill_postmaster)(old)
        deadline = killed_at + 90
        while time.monotonic() < deadline and not any(
            t > killed_at + 0.5 for t in writers.acknowledged_at
        ):
            time.sleep(0.05)
        time.sleep(after)
    after_kill = [t for t in writers.acknowledged_at if t > killed_at]
    last_before = max((t for t in writers.acknowledged_at if t <= killed_at), default=killed_at)
    resumed = min(after_kill, default=None)
    new = cluster.leader()
    missing = [a for a in writers.acknowledged if a not in platform.orders()]
    return {
        "kill": kill,
        "old_primary": old,
        "new_primary": new,
        "acknowledged": len(writers.acknowledged),
        "acknowledged_before_kill": before,
        "acknowledged_after_kill": len(after_kill),
        "lost": len(missing),
        "missing_examples": missing[:3],
        "seconds_without_writes": None if resumed is None else resumed - last_before,
        "seconds_to_first_write": None if resumed is None else resumed - killed_at,
        "unavailable_503": writers.unavailable,
        "errors": writers.errors[:5],
        "error_count": len(writers.errors),
        "server_restarted": platform.served.process.poll() is not None
        or platform.served.process.pid != server_pid,
    }
