"""Which member of each PostgreSQL cluster is the primary, how far its standbys lag, and
alerts when a standby is missing or lags (C6, C8).

A database server listed with several members (host "db1,db2", docs/deployment.md) is a
high-availability cluster run by Patroni: one primary and one or more standbys. The
application connects to whichever accepts writes (``target_session_attrs=read-write``),
so a failover needs nobody. What it cannot do alone is notice a cluster that would not
survive the next failure: a standby gone, or so far behind that promoting it would wait
(or, with asynchronous replication, lose writes). ``oxygis status`` shows it; the backup
worker checks it every pass and raises alerts like the backup monitor's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import psycopg
from django.conf import settings

from .models import DatabaseServer

STANDBY_MISSING = "replication-standby-missing:{server}"
LAGGING = "replication-lag:{server}"
NO_PRIMARY = "replication-no-primary:{server}"


@dataclass
class Member:
    host: str
    port: str
    role: str  # "primary", "standby" or "unreachable"
    error: str = ""
    # On a standby: how long since it replayed the primary's last transaction (seconds).
    replay_delay: float | None = None


@dataclass
class Standby:
    name: str  # application_name: Patroni's node name
    address: str
    state: str  # "streaming", "catchup", ...
    sync_state: str  # "sync", "async", "quorum", "potential"
    lag_bytes: int  # WAL written on the primary and not yet replayed there
    replay_lag: float  # seconds (0 when caught up and idle)


@dataclass
class ClusterStatus:
    server: str
    members: list[Member]
    standbys: list[Standby] = field(default_factory=list)  # as the primary sees them

    @property
    def primary(self) -> Member | None:
        return next((m for m in self.members if m.role == "primary"), None)

    @property
    def expected_standbys(self) -> int:
        return len(self.members) - 1

    def problems(self, lag_seconds: float) -> dict[str, str]:
        """Alert key -> message, for what is wrong now (empty: healthy)."""
        found = {}
        if len(self.members) < 2:
            return found
        if self.primary is None:
            found[NO_PRIMARY.format(server=self.server)] = (
                f"database server {self.server}: no member accepts writes "
                f"({', '.join(f'{m.host}:{m.port} {m.role}' for m in self.members)})"
            )
            return found
        streaming = [s for s in self.standbys if s.state == "streaming"]
        if len(streaming) < self.expected_standbys:
            found[STANDBY_MISSING.format(server=self.server)] = (
                f"database server {self.server}: {len(streaming)} of "
                f"{self.expected_standbys} standby(s) streaming from the primary "
                f"{self.primary.host}:{self.primary.port}: the next failure of the primary "
                "would stop the service"
            )
        slow = [s for s in streaming if s.replay_lag > lag_seconds]
        if slow:
            found[LAGGING.format(server=self.server)] = (
                f"database server {self.server}: standby {slow[0].name} replays "
                f"{slow[0].replay_lag:.0f} s behind the primary (alert over {lag_seconds:.0f} s)"
            )
        return found

    def as_dict(self) -> dict:
        return {
            "server": self.server,
            "primary": f"{self.primary.host}:{self.primary.port}" if self.primary else None,
            "members": [asdict(m) for m in self.members],
            "standbys": [asdict(s) for s in self.standbys],
        }


_STANDBYS = """
SELECT application_name, coalesce(host(client_addr), 'local'), state, sync_state,
       coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0)::bigint,
       coalesce(extract(epoch FROM replay_lag), 0)::float8
FROM pg_stat_replication ORDER BY application_name
"""


def cluster_status(server: DatabaseServer) -> ClusterStatus:
    """Ask each member of ``server`` what it is (its own session, whatever its role)."""
    from .engines import engine_for

    engine = engine_for(server)
    status = ClusterStatus(server=server.name, members=[])
    for host, port in server.members:
        try:
            with engine.admin_member(host, port) as conn:
                standby = conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
                member = Member(host, port, "standby" if standby else "primary")
                if standby:
                    delay = conn.execute(
                        "SELECT extract(epoch FROM now() - pg_last_xact_replay_timestamp())"
                    ).fetchone()[0]
                    member.replay_delay = None if delay is None else float(delay)
                else:
                    status.standbys = [Standby(*row) for row in conn.execute(_STANDBYS)]
        except psycopg.Error as exc:
            text = str(exc).strip().splitlines()
            member = Member(host, port, "unreachable", error=text[-1] if text else "")
        status.members.append(member)
    return status


def postgresql_servers() -> list[DatabaseServer]:
    return list(DatabaseServer.objects.filter(engine=DatabaseServer.POSTGRESQL).order_by("name"))


def check_replication() -> list[ClusterStatus]:
    """Raise an alert for each cluster missing a standby, lagging or without a primary;
    resolve the ones whose condition cleared. Plain servers (one member) are skipped."""
    from oxygis.backups.alerts import raise_alert, resolve_alert

    statuses = []
    for server in postgresql_servers():
        if len(server.members) < 2:
            continue
        status = cluster_status(server)
        statuses.append(status)
        problems = status.problems(settings.REPLICATION_LAG_ALERT_SECONDS)
        for key, message in problems.items():
            raise_alert(key, message)
        for template in (STANDBY_MISSING, LAGGING, NO_PRIMARY):
            key = template.format(server=server.name)
            if key not in problems:
                resolve_alert(key)
    return statuses
