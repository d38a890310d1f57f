"""C8 (a supervised worker with a heartbeat): the backup worker survives an outage of
the catalog, is restarted when killed or hung, and a worker that stops beating is
reported within two passes. Each test fails on the code before the fix."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from oxygis.backups import monitor
from oxygis.backups.models import Alert, WorkerHeartbeat
from tests.conftest import ENGINE
from tests.fixtures import cut_database, mails_to
from tests.tenancy.test_cli import oxygis


def cli(env, *args):
    return oxygis(*args, env=env)


def workers_seen(env) -> dict[str, str]:
    """pid -> the status line of each worker heartbeat, as `backup status` prints it."""
    out = cli(env, "backup", "status").stdout
    return {m[1]: m[0] for m in re.finditer(r"Worker [^:]+:(\d+): [^\n]*", out)}


def wait_for(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def start(env, *args, log=None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "oxygis.cli", "worker", "--interval", "1", *args],
        env={**os.environ, **env},
        stdout=log or subprocess.DEVNULL,
        stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
    )


def stop(process) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def catalog(own_catalog, tmp_path):
    env = {**own_catalog, "OXYGIS_OPS_EMAIL": "ops@oxygis.example"}
    assert cli(env, "migrate", "--verbosity", "0").returncode == 0
    return env


def test_a_killed_worker_is_restarted_and_an_alert_says_so(catalog, tmp_path):
    """C8: kill -9 the worker that the supervisor (what `oxygis serve` runs) keeps: a new
    one beats within seconds, and operations are told by an alert (and e-mail) that is
    resolved once the new worker has made a good pass."""
    supervisor = start(catalog, "--supervise")
    try:
        first = wait_for(lambda: workers_seen(catalog), 60, "a worker's heartbeat")
        (pid,) = first
        os.kill(int(pid), signal.SIGKILL)
        second = wait_for(
            lambda: {p for p in workers_seen(catalog) if p != pid}, 60, "the restarted worker"
        )
        assert second
        mail = wait_for(
            lambda: mails_to("ops@oxygis.example", tmp_path / "mail"), 30, "the alert mail"
        )
        assert "stopped (exit -9)" in str(mail[0]["Subject"])
        out = wait_for(
            lambda: (
                (o := cli(catalog, "backup", "status").stdout) and "stopped (exit" not in o and o
            ),
            60,
            "the alert to resolve",
        )
        assert "No open alerts." in out
    finally:
        stop(supervisor)
    assert supervisor.returncode == 0


def test_a_hung_worker_is_killed_and_restarted(catalog):
    """C8: a worker that stops beating while it still runs (stopped here with SIGSTOP)
    is killed by its supervisor after two passes and replaced."""
    supervisor = start(catalog, "--supervise")
    try:
        (pid,) = wait_for(lambda: workers_seen(catalog), 60, "a worker's heartbeat")
        os.kill(int(pid), signal.SIGSTOP)
        wait_for(lambda: {p for p in workers_seen(catalog) if p != pid}, 60, "the replacing worker")
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid), 0)  # the hung one is gone
    finally:
        stop(supervisor)


def _cut_the_catalog(env):
    """An outage of the catalog, as the engine has it: connections refused."""
    if ENGINE == "postgresql":
        return cut_database(ENGINE, env["OXYGIS_DATABASE_URL"].rsplit("/", 1)[1])
    return cut_database(ENGINE, os.path.join(env["OXYGIS_VAR_DIR"], "catalog.sqlite3"))


def test_the_worker_survives_a_catalog_outage_and_backs_up_what_came_after(catalog, tmp_path):
    """C8: the catalog out of reach for a while: the worker logs one line, keeps
    retrying (never exits), says so in its heartbeat, and once the catalog is back it
    carries on: a tenant created afterwards gets its backup."""
    log = open(tmp_path / "worker.log", "w+")  # noqa: SIM115 - closed below
    worker = start(catalog, log=log)
    try:
        wait_for(lambda: workers_seen(catalog), 60, "a worker's heartbeat")
        back = _cut_the_catalog(catalog)
        time.sleep(6)
        assert worker.poll() is None, "the worker died of the outage"
        back()
        made = cli(catalog, "tenant", "create", "after-outage", "--name", "After")
        assert made.returncode == 0, made.stderr
        wait_for(
            lambda: " good " in cli(catalog, "backup", "list", "--tenant", "after-outage").stdout,
            90,
            "a backup of the tenant created after the outage",
        )
        assert worker.poll() is None
    finally:
        stop(worker)
        log.seek(0)
        text = log.read()
        log.close()
    assert text.count("worker pass failed") == 1, text[-3000:]
    assert "worker passes work again" in text


def test_a_stale_worker_is_reported_within_two_passes():
    """C8: a heartbeat older than two passes makes `backup status` exit 1, naming the
    worker, and raises an alert; a fresh one resolves it."""
    holder = "elsewhere:4242"
    WorkerHeartbeat.objects.all().delete()  # the in-process workers of other tests
    WorkerHeartbeat.objects.create(
        holder=holder,
        host="elsewhere",
        pid=4242,
        interval=30,
        beat_at=timezone.now() - timedelta(seconds=100),
    )
    try:
        with pytest.raises(CommandError) as failed:
            call_command("backup", "status", stdout=open(os.devnull, "w"))  # noqa: SIM115
        assert failed.value.returncode == 1 and "no healthy backup worker" in str(failed.value)
        assert Alert.objects.filter(key="worker-heartbeat", resolved_at__isnull=True).exists()
        WorkerHeartbeat.objects.filter(holder=holder).update(beat_at=timezone.now())
        assert monitor.check_workers()
        assert not Alert.objects.filter(key="worker-heartbeat", resolved_at__isnull=True).exists()
    finally:
        WorkerHeartbeat.objects.filter(holder=holder).delete()
