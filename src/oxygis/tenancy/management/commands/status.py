"""``oxygis status [--json]``: each PostgreSQL database server, which of its members is
the primary, and how far its standbys lag (tenancy/replication.py). Exit 1 when a
cluster misses a standby, lags over OXYGIS_REPLICATION_LAG_ALERT_SECONDS or has no
primary."""

from __future__ import annotations

import json

from django.conf import settings
from django.core.management.base import BaseCommand

from oxygis.tenancy.replication import cluster_status, postgresql_servers


class Command(BaseCommand):
    help = "Show the database servers: primary, standbys and their replication lag."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="one JSON document")

    def handle(self, *args, **options):
        threshold = settings.REPLICATION_LAG_ALERT_SECONDS
        statuses = [cluster_status(server) for server in postgresql_servers()]
        problems = {k: v for s in statuses for k, v in s.problems(threshold).items()}
        if options["json"]:
            document = {
                "servers": [s.as_dict() for s in statuses],
                "problems": sorted(problems.values()),
            }
            self.stdout.write(json.dumps(document, indent=1))
        else:
            if not statuses:
                self.stdout.write("No PostgreSQL database server (tenants live in SQLite files).")
            for status in statuses:
                kind = "cluster" if len(status.members) > 1 else "single server, no standby"
                self.stdout.write(f"database server {status.server} ({kind})")
                for m in status.members:
                    line = f"  {m.host}:{m.port}  {m.role}"
                    if m.replay_delay is not None:
                        line += f"  last replayed transaction {m.replay_delay:.1f} s ago"
                    if m.error:
                        line += f"  ({m.error})"
                    self.stdout.write(line)
                for s in status.standbys:
                    self.stdout.write(
                        f"  standby {s.name} ({s.address}): {s.state}, {s.sync_state}, "
                        f"{s.lag_bytes} bytes behind, replay lag {s.replay_lag:.1f} s"
                    )
            for message in sorted(problems.values()):
                self.stderr.write(f"PROBLEM: {message}")
            if statuses and not problems:
                self.stdout.write("OK")
        if problems:
            raise SystemExit(1)
