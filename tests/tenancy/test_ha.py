"""C6: a hot standby and automatic failover. Oxygis on a real Patroni cluster (etcd x3, a
primary and a synchronous standby on loopback, tests/ha.py), connected with a
multi-host URL: killing the primary under write load loses no acknowledged write and
the service writes again on its own; `oxygis status` and the worker say when the
cluster would not survive the next failure."""

from __future__ import annotations

import json
import os
import time

import pytest
from django.core.exceptions import ImproperlyConfigured

from oxygis.tenancy.dburl import host_ports, parse_database_url
from tests import ha


def test_a_cluster_url_names_every_member_and_asks_for_the_primary():
    """C6: several hosts become libpq's host and port lists (a port for each), and the
    connection asks for the member accepting writes unless told otherwise."""
    entry = parse_database_url("postgresql://app:s%40cret@db1:5433,db2,[::1]:5434/catalog")
    assert (entry["HOST"], entry["PORT"]) == ("db1,db2,::1", "5433,5432,5434")
    assert entry["OPTIONS"] == {"target_session_attrs": "read-write"}
    assert (entry["USER"], entry["PASSWORD"], entry["NAME"]) == ("app", "s@cret", "catalog")
    assert host_ports(entry["HOST"], entry["PORT"])[1] == ("db2", "5432")
    single = parse_database_url("postgresql://app@db1:6000/catalog")
    assert (single["HOST"], single["PORT"], single["OPTIONS"]) == ("db1", "6000", {})
    chosen = parse_database_url("postgresql://a@h1,h2/c?target_session_attrs=primary")
    assert chosen["OPTIONS"] == {"target_session_attrs": "primary"}
    for bad in (
        "postgresql://a@h1:99999/c",
        "postgresql://a@h1,:5432/c",
        "postgresql://a@h1,h2/c?target_session_attrs=writable",
    ):
        with pytest.raises(ImproperlyConfigured) as refused:
            parse_database_url(bad)
        assert "a@" not in str(refused.value)  # the URL (and its password) is never echoed


def test_status_of_a_platform_without_a_cluster(tenant_factory):
    """C6: on a single PostgreSQL server `oxygis status` says it has no standby and exits
    0 (nothing to alert about in a set-up that never had one); on SQLite it says so."""
    from tests.conftest import ENGINE
    from tests.tenancy.test_cli import oxygis

    tenant_factory()
    result = oxygis("status")
    assert result.returncode == 0, result.stdout + result.stderr
    expected = "single server, no standby" if ENGINE == "postgresql" else "SQLite"
    assert expected in result.stdout


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    if not ha.available():
        if os.environ.get("CI") == "true":
            pytest.fail("patroni or etcd is missing (scripts/ensure-patroni installs them)")
        pytest.skip("patroni or etcd is not installed (scripts/ensure-patroni)")
    cluster = ha.Cluster()
    try:
        made = ha.Platform(cluster, tmp_path_factory.mktemp("ha"))
        try:
            yield made
        finally:
            made.stop()
    finally:
        cluster.stop()


@pytest.mark.postgresql
def test_a_killed_primary_loses_no_acknowledged_write(platform):
    """C6: three writers create orders through the API; the primary's PostgreSQL is
    killed (-9). Patroni promotes the synchronous standby; the service writes again
    within 30 s without a restart or a change of settings (the tenant's own role and
    password work on the promoted standby), clients meanwhile get a clean 503 with
    Retry-After and nothing else, and every acknowledged order is on the new primary."""
    failover = ha.failover_under_load(platform, kill="postmaster")
    print(json.dumps(failover))
    assert failover["new_primary"] not in (None, failover["old_primary"])
    assert failover["errors"] == [], failover["errors"]
    assert failover["acknowledged_after_kill"] > 10, "writes should have resumed"
    assert failover["seconds_to_first_write"] < 30
    assert failover["lost"] == 0, failover["missing_examples"]
    assert not failover["server_restarted"]


@pytest.mark.postgresql
def test_status_names_the_primary_and_alerts_when_the_standby_is_gone(platform):
    """C6, C8: `oxygis status` names the primary and its streaming synchronous standby;
    with the standby's machine gone it exits 1 with the problem in one line, the worker's
    check raises an alert, and both clear once the standby is back."""
    cluster = platform.cluster
    leader = cluster.wait_healthy(120)
    primary_port = str(cluster.nodes[leader]["port"])

    status = platform.oxygis("status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    document = json.loads(status.stdout)
    (server,) = document["servers"]
    assert server["primary"] == f"127.0.0.1:{primary_port}"
    (standby,) = server["standbys"]
    assert (standby["state"], standby["sync_state"]) == ("streaming", "sync")

    check = (
        "from oxygis.tenancy.replication import check_replication\n"
        "from oxygis.backups.alerts import open_alerts\n"
        "check_replication()\n"
        "print(sorted(a.key.split(':')[0] for a in open_alerts()))"
    )
    (other,) = [name for name in cluster.nodes if name != leader]
    cluster.kill_node(other)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the primary notices its walsender gone
        degraded = platform.oxygis("status")
        if degraded.returncode == 1:
            break
        time.sleep(0.5)
    assert degraded.returncode == 1, degraded.stdout
    problems = [line for line in degraded.stderr.splitlines() if line.startswith("PROBLEM")]
    assert len(problems) == 1 and "0 of 1 standby(s) streaming" in problems[0]
    alerts = platform.oxygis("shell", "-c", check)
    assert "replication-standby-missing" in alerts.stdout, alerts.stdout + alerts.stderr

    cluster.start_node(other)
    cluster.wait_healthy(120)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        healed = platform.oxygis("shell", "-c", check)
        if "replication-standby-missing" not in healed.stdout:
            break
        time.sleep(1)
    assert healed.returncode == 0 and "replication" not in healed.stdout, healed.stdout
    assert platform.oxygis("status").returncode == 0
