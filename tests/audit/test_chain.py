"""C17: each database's audit events form a hash chain, signed by the worker, so that an
edited, deleted, inserted, reordered or truncated event is named by ``oxygis audit
verify``; on PostgreSQL the tenant's own role cannot change or delete them."""

from __future__ import annotations

import sqlite3
import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connections
from django.utils import timezone

from oxygis.audit.chain import link_hash
from oxygis.audit.events import record
from oxygis.audit.models import AuditEvent
from oxygis.backups import digests
from oxygis.backups.models import Alert, AuditDigest
from oxygis.backups.targets import tenant_target
from oxygis.tenancy.databases import tenant_context
from oxygis.tenancy.engines import engine_for
from tests.conftest import ENGINE


def run_sql(tenant, statement: str, params=()):
    """Change the tenant's database behind the application's back, as an intruder with
    the database's files or its administrator's password would."""
    entry = engine_for(tenant.database_server).tenant_entry(tenant)
    if ENGINE == "postgresql":
        with engine_for(tenant.database_server).admin(entry["NAME"]) as conn:
            conn.execute(statement.replace("?", "%s"), params)
    else:
        conn = sqlite3.connect(entry["NAME"])
        with conn:
            conn.execute(statement, params)
        conn.close()


def write_events(tenant, count: int):
    with tenant_context(tenant):
        for n in range(count):
            record("policy.changed", target=f"change {n}", n=n)


@pytest.fixture
def sealed(tenant_factory):
    """A tenant with 20 events after provisioning's own, its chain signed at #N."""
    tenant = tenant_factory().tenant
    write_events(tenant, 20)
    digest = digests.seal(tenant_target(tenant), sites=[])
    assert digest is not None
    return tenant, digest


def verdict_of(tenant):
    return digests.verify(tenant_target(tenant))


def test_concurrent_writers_get_a_gap_free_chain(tenant_factory):
    """C17: four threads appending at once: numbers 1..N with no gap or duplicate, every
    link holds."""
    tenant = tenant_factory().tenant
    errors = []

    def writer(k):
        try:
            with tenant_context(tenant):
                for n in range(15):
                    record("policy.changed", target=f"writer {k}", n=n)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with tenant_context(tenant):
        seqs = list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= 60
    assert verdict_of(tenant).ok


def test_an_untouched_chain_verifies(sealed):
    """C17: the chain as written, signed, verifies, and says how far it is signed."""
    tenant, digest = sealed
    verdict = verdict_of(tenant)
    assert verdict.ok and verdict.signed_through == digest.seq, str(verdict)


def test_an_edited_event_is_named(sealed):
    """C17: an event's content changed in the database: named by its number."""
    tenant, _ = sealed
    run_sql(tenant, "UPDATE audit_auditevent SET actor = 'nobody' WHERE seq = 5")
    verdict = verdict_of(tenant)
    assert not verdict.ok and "event #5" in verdict.problem and "edited" in verdict.problem


def test_an_edited_event_with_recomputed_hashes_is_caught_by_the_digest(sealed):
    """C17: an intruder who edits an event and recomputes every hash after it still
    differs from what the worker signed."""
    tenant, digest = sealed
    run_sql(tenant, "UPDATE audit_auditevent SET target = 'forged' WHERE seq = 3")
    with tenant_context(tenant):
        prev = AuditEvent.objects.get(seq=2).hash
        for event in AuditEvent.objects.filter(seq__gte=3).order_by("seq"):
            new = link_hash(prev, AuditEvent(**{**_fields(event), "prev_hash": prev}))
            run_sql(
                tenant,
                "UPDATE audit_auditevent SET prev_hash = ?, hash = ? WHERE seq = ?",
                (prev, new, event.seq),
            )
            prev = new
    verdict = verdict_of(tenant)
    assert not verdict.ok and f"#{digest.seq}" in verdict.problem, str(verdict)
    assert "rewritten" in verdict.problem


def _fields(event):
    return {f.attname: getattr(event, f.attname) for f in AuditEvent._meta.concrete_fields}


def test_a_deleted_event_is_named(sealed):
    """C17: an event deleted from the middle: the gap is named."""
    tenant, _ = sealed
    run_sql(tenant, "DELETE FROM audit_auditevent WHERE seq = 7")
    verdict = verdict_of(tenant)
    assert not verdict.ok and "#7" in verdict.problem and "missing" in verdict.problem


def test_an_inserted_event_is_named(sealed):
    """C17: an event slipped in after #4 (the later ones renumbered to make room): the
    link after it no longer holds."""
    tenant, _ = sealed
    run_sql(tenant, "UPDATE audit_auditevent SET seq = seq + 1000 WHERE seq > 4")
    run_sql(tenant, "UPDATE audit_auditevent SET seq = seq - 999 WHERE seq > 1000")
    with tenant_context(tenant):
        prev = AuditEvent.objects.get(seq=4).hash
        forged = AuditEvent(
            seq=5, at=timezone.now(), action="logout", actor="x", prev_hash=prev, details={}
        )
        forged.hash = link_hash(prev, forged)
    run_sql(
        tenant,
        "INSERT INTO audit_auditevent (seq, at, action, actor_id, actor, target, ip, details, "
        "prev_hash, hash) VALUES (?, ?, ?, NULL, ?, '', NULL, '{}', ?, ?)",
        (5, forged.at.isoformat(), "logout", "x", prev, forged.hash),
    )
    verdict = verdict_of(tenant)
    assert not verdict.ok and "event #6" in verdict.problem and "link" in verdict.problem


def test_reordered_events_are_named(sealed):
    """C17: two events swapped (their numbers exchanged): the first is named."""
    tenant, _ = sealed
    run_sql(tenant, "UPDATE audit_auditevent SET seq = -1 WHERE seq = 8")
    run_sql(tenant, "UPDATE audit_auditevent SET seq = 8 WHERE seq = 9")
    run_sql(tenant, "UPDATE audit_auditevent SET seq = 9 WHERE seq = -1")
    verdict = verdict_of(tenant)
    assert not verdict.ok and "event #8" in verdict.problem


def test_a_truncated_chain_is_named(sealed):
    """C17: the newest events deleted (which leaves a chain that links): the signed
    digest says what is gone."""
    tenant, digest = sealed
    run_sql(tenant, "DELETE FROM audit_auditevent WHERE seq > ?", (digest.seq - 3,))
    verdict = verdict_of(tenant)
    assert not verdict.ok and "truncated" in verdict.problem, str(verdict)
    assert f"#{digest.seq}" in verdict.problem


def test_events_deleted_from_the_start_are_named(sealed):
    """C17: the oldest events deleted with no signed retention cut: named."""
    tenant, _ = sealed
    run_sql(tenant, "DELETE FROM audit_auditevent WHERE seq <= 3")
    verdict = verdict_of(tenant)
    assert not verdict.ok and "#1 to #3" in verdict.problem


def test_a_forged_digest_is_refused(sealed):
    """C17: a digest row altered in the catalog no longer carries a valid signature."""
    tenant, digest = sealed
    AuditDigest.objects.filter(pk=digest.pk).update(head_hash="0" * 64)
    verdict = verdict_of(tenant)
    assert not verdict.ok and "signature" in verdict.problem


def test_the_worker_does_not_sign_a_broken_chain_and_alerts(sealed):
    """C17: after an edit, the next seal refuses to sign and raises an alert."""
    tenant, digest = sealed
    write_events(tenant, 2)
    run_sql(tenant, "UPDATE audit_auditevent SET target = 'x' WHERE seq = ?", (digest.seq,))
    assert digests.seal(tenant_target(tenant), sites=[]) is None
    alert = Alert.objects.get(key=f"audit-chain:{tenant.id.hex}", resolved_at__isnull=True)
    assert f"#{digest.seq}" in alert.message


def test_retention_prunes_whole_signed_segments_and_the_rest_verifies(tenant_factory, monkeypatch):
    """C17: events older than the retention period go, only up to a signed digest,
    never the head; what stays verifies, and a deletion past the cut is still named."""
    tenant = tenant_factory().tenant
    target = tenant_target(tenant)
    long_ago = timezone.now() - timedelta(days=500)
    monkeypatch.setattr("oxygis.audit.events.timezone.now", lambda: long_ago)
    write_events(tenant, 10)
    old = digests.seal(target, sites=[])
    write_events(tenant, 5)  # old too, but not yet signed: they stay
    monkeypatch.undo()
    write_events(tenant, 5)
    digests.seal(target, sites=[])
    monkeypatch.setattr(settings, "AUDIT_RETENTION_DAYS", 400)
    assert digests.prune(target, sites=[]) == old.seq
    with tenant_context(tenant):
        assert AuditEvent.objects.order_by("seq").first().seq == old.seq + 1
    verdict = verdict_of(tenant)
    assert verdict.ok and verdict.first_seq == old.seq + 1, str(verdict)
    assert digests.prune(target, sites=[]) == 0  # nothing more is old and signed
    run_sql(tenant, "DELETE FROM audit_auditevent WHERE seq = ?", (old.seq + 1,))
    assert not verdict_of(tenant).ok


def test_digests_are_copied_to_the_backup_sites(tenant_factory, tmp_path):
    """C17: each signed digest is also on every backup site, signature included."""
    import json

    from oxygis.backups.sites import configured_sites

    sites = configured_sites([(tmp_path / n).as_uri() for n in ("one", "two", "three")])
    tenant = tenant_factory().tenant
    write_events(tenant, 1)
    digest = digests.seal(tenant_target(tenant), sites=sites)
    for site in sites:
        (name,) = [p for p in site.paths() if p.startswith(f"audit-digests/{tenant.id.hex}/")]
        copy = json.loads(site.get(name))
        assert copy["seq"] == digest.seq and copy["signature"] == digest.signature


def test_audit_verify_command_exit_codes(sealed):
    """C17: ``oxygis audit verify`` says ok (exit 0), names the break (exit 1), and an
    unknown tenant is one line with exit 2."""
    tenant, _ = sealed
    out = StringIO()
    call_command("audit", "verify", "--tenant", tenant.slug, stdout=out)
    assert out.getvalue().startswith("ok")
    run_sql(tenant, "DELETE FROM audit_auditevent WHERE seq = 2")
    out = StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("audit", "verify", "--tenant", tenant.slug, stdout=out, stderr=StringIO())
    assert exited.value.code == 1 and "BROKEN" in out.getvalue() and "#2" in out.getvalue()
    from django.core.management.base import CommandError

    with pytest.raises(CommandError) as failed:
        call_command("audit", "verify", "--tenant", "no-such-tenant")
    assert failed.value.returncode == 2


@pytest.mark.postgresql
def test_the_tenant_role_cannot_change_or_delete_audit_rows(tenant_factory):
    """C17: on PostgreSQL the tenant's own role may add and read audit events, not
    update or delete them, nor take the table back. (Owning its schema, it could still
    drop the table whole: ``verify`` then finds the signed events gone.)"""
    import psycopg
    from psycopg import sql

    tenant = tenant_factory().tenant
    write_events(tenant, 1)
    entry = engine_for(tenant.database_server).tenant_entry(tenant)
    with psycopg.connect(
        host=entry["HOST"],
        port=entry["PORT"],
        dbname=entry["NAME"],
        user=entry["USER"],
        password=entry["PASSWORD"],
        autocommit=True,
    ) as conn:
        assert conn.execute("SELECT count(*) FROM audit_auditevent").fetchone()[0] >= 1
        for statement in (
            "UPDATE audit_auditevent SET actor = 'x'",
            "DELETE FROM audit_auditevent",
            "TRUNCATE audit_auditevent",
            sql.SQL("ALTER TABLE audit_auditevent OWNER TO {}").format(
                sql.Identifier(entry["USER"])
            ),
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        digests.seal(tenant_target(tenant), sites=[])
        conn.execute("DROP TABLE audit_auditevent")
    verdict = verdict_of(tenant)
    assert not verdict.ok, str(verdict)
