"""``oxygis worker --supervise``: keep one backup worker running (``oxygis serve`` starts
this beside the web server; under systemd, ``Restart=always`` plays the same part).

The worker runs as a child process. When it exits (a crash, kill -9, an out-of-memory
kill) it is started again after a back-off (1 s, doubling up to 5 minutes while it keeps
dying young), and an alert is raised; the new worker resolves it after its first good
pass. A worker whose heartbeat is older than two passes while it still runs is hung:
it is killed and started again. The child stops by itself if its supervisor dies.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

from django.utils import timezone

from . import alerts
from .leases import HOST
from .models import WorkerHeartbeat
from .monitor import too_old
from .worker import SUPERVISOR_ENV

log = logging.getLogger("oxygis.backups.worker")

MAX_BACKOFF = 300
STABLE_AFTER = 60  # seconds alive after which a restart counts as a fresh start


class Supervisor:
    def __init__(self, interval: int):
        self.interval = interval
        self.stopping = False
        self.child: subprocess.Popen | None = None

    def _spawn(self) -> subprocess.Popen:
        command = [sys.executable, "-m", "oxygis.cli", "worker", "--interval", str(self.interval)]
        env = {**os.environ, SUPERVISOR_ENV: str(os.getpid())}
        child = subprocess.Popen(command, env=env)  # noqa: S603 # nosec B603 # our own program, no shell
        log.info("backup worker started (pid %s)", child.pid)
        return child

    def _hung(self, child: subprocess.Popen, started: float) -> bool:
        limit = too_old(self.interval)
        if time.monotonic() - started < limit.total_seconds():
            return False  # still starting
        try:
            beat = WorkerHeartbeat.objects.filter(holder=f"{HOST}:{child.pid}").first()
        except Exception:  # the catalog is out of reach: that is not the worker's fault
            return False
        return beat is None or timezone.now() - beat.beat_at > limit

    def _stop(self, signum, frame) -> None:
        self.stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        backoff = 1
        while not self.stopping:
            self.child = child = self._spawn()
            started = time.monotonic()
            next_check = started
            while not self.stopping and child.poll() is None:
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + self.interval
                    if self._hung(child, started):
                        log.error("backup worker (pid %s) stopped beating: killed", child.pid)
                        child.kill()
                        child.wait()
                        break
                time.sleep(0.5)
            if self.stopping:
                break
            code = child.poll()
            lived = time.monotonic() - started
            backoff = 1 if lived > STABLE_AFTER else min(backoff * 2, MAX_BACKOFF)
            message = (
                f"the backup worker on {HOST} (pid {child.pid}) stopped "
                f"(exit {code}) after {lived:.0f} s; restarted in {backoff} s"
            )
            log.error(message)
            try:
                alerts.raise_alert(f"worker-restarted:{HOST}", message)
            except Exception as exc:  # the catalog may be what killed it; log and go on
                log.error("could not record the alert: %s", exc)
            deadline = time.monotonic() + backoff
            while not self.stopping and time.monotonic() < deadline:
                time.sleep(0.2)
        if self.child is not None and self.child.poll() is None:
            self.child.terminate()
            try:
                self.child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.child.kill()
        return 0
