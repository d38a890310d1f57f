"""``oxygis worker``: scheduled backups, re-sync, retention, restores and monitoring."""

from __future__ import annotations

import contextlib
import signal
import sys

from django.conf import settings
from django.core.management.base import BaseCommand

from ...supervisor import Supervisor
from ...worker import Worker


class Command(BaseCommand):
    help = "Run the backup worker (oxygis serve runs one in the embedded mode)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="one pass, then exit")
        parser.add_argument(
            "--interval",
            type=int,
            default=settings.WORKER_INTERVAL,
            help="seconds between passes (default OXYGIS_WORKER_INTERVAL or 30)",
        )
        parser.add_argument(
            "--supervise",
            action="store_true",
            help="run the worker as a child process and restart it if it dies or hangs",
        )

    def handle(self, *args, once, interval, supervise, **options):
        interval = max(1, interval)
        if supervise:
            sys.exit(Supervisor(interval).run())
        worker = Worker(interval=interval)

        def stop(signum, frame):
            # Unwinds: a backup in progress cleans up and is marked failed. The flag also
            # ends the loop if the exception is swallowed inside a native call.
            worker.stopping = True
            raise SystemExit(0)

        signal.signal(signal.SIGTERM, stop)
        try:
            if once:
                worker.tick()
            else:
                worker.run_forever()
        except KeyboardInterrupt:
            pass
        finally:
            if not once:
                # Stopped on purpose: no longer a worker to expect beats from.
                with contextlib.suppress(Exception):
                    worker.heartbeat.gone()
