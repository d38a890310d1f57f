"""Backups end to end on real sites: encrypted, verified on three sites, signed, restored."""

from __future__ import annotations

import json
import socket

import pytest

from oxygis.backups import restore, service, sources
from oxygis.backups.errors import BackupError
from oxygis.backups.keys import Keys, configured_keys
from oxygis.backups.leases import LeaseGuard, LeaseHeld
from oxygis.backups.models import Alert, Backup, BackupCopy, Restore
from oxygis.backups.sites import configured_sites
from oxygis.platform.provisioning import drop_tenant
from oxygis.tenancy.models import Tenant

from .conftest import sales_snapshot, site_folder


def _dump_paths(backup, site_urls):
    return [site_folder(url) / backup.prefix / "dump.age" for url in site_urls]


def _drop_restored(slug):
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is not None:
        drop_tenant(tenant)


def test_backup_is_good_only_once_verified_on_three_sites(data_tenant, sites, site_urls):
    """C3: a backup is written to every site, read back, and good with three verified."""
    backup = service.run_backup(service.tenant_target(data_tenant.tenant), sites=sites)
    assert backup.state == Backup.GOOD
    copies = list(backup.copies.all())
    assert [c.state for c in copies] == [BackupCopy.VERIFIED] * 3
    assert {c.site for c in copies} == set(site_urls)
    for path in _dump_paths(backup, site_urls):
        assert path.stat().st_size == backup.stored_bytes


def test_stored_backup_is_encrypted_and_its_manifest_signed(data_tenant, sites, site_urls):
    """C2: what a site holds is age ciphertext (no customer data readable) with a manifest
    signed by the platform, describing the data exactly."""
    backup = service.run_backup(service.tenant_target(data_tenant.tenant), sites=sites)
    stored = _dump_paths(backup, site_urls)[0].read_bytes()
    assert stored.startswith(b"age-encryption.org/v1")
    assert b"Customer" not in stored and b"Gadget" not in stored and b"CREATE TABLE" not in stored
    sealed = json.loads((site_folder(site_urls[0]) / backup.prefix / "manifest.json").read_bytes())
    manifest = sealed["manifest"]
    assert manifest["sha256"] == backup.sha256
    assert manifest["tenant"]["slug"] == data_tenant.tenant.slug
    assert manifest["row_counts"]["sales_contact"] == 5
    assert "sales.0001_initial" in manifest["migrations"]
    assert manifest["recipients"] == configured_keys().recipient_fingerprints


def test_flipped_byte_is_detected_and_restore_uses_another_site(
    data_tenant, sites, site_urls, capsys
):
    """C3, C8: a flipped byte in one site's copy fails verification (non-zero exit, an
    alert), and a restore still succeeds from an intact copy."""
    from django.core.management import call_command
    from django.core.management.base import CommandError
    from django.test import override_settings

    tenant = data_tenant.tenant
    original = sales_snapshot(tenant)
    backup = service.run_backup(service.tenant_target(tenant), sites=sites)
    damaged = _dump_paths(backup, site_urls)[0]
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0x01
    damaged.write_bytes(bytes(data))

    bad = service.verify_backup(backup, sites)
    assert [c.site for c in bad] == [site_urls[0]]
    assert bad[0].state == BackupCopy.MISMATCH
    backup.refresh_from_db()
    assert backup.state == Backup.DEGRADED  # two verified copies are not three
    assert Alert.objects.filter(
        key=f"copy-bad:{backup.id.hex}:{site_urls[0]}", resolved_at__isnull=True
    ).exists()
    with pytest.raises(CommandError) as failed, override_settings(BACKUP_SITES=site_urls):
        call_command("backup", "verify", "--tenant", tenant.slug)
    assert failed.value.returncode == 2 and "failed verification" in str(failed.value)

    # Mark the damaged copy as verified again so that the restore tries it first.
    BackupCopy.objects.filter(backup=backup).update(state=BackupCopy.VERIFIED)
    run = restore.request_restore(backup, Restore.SIDE_BY_SIDE, "test")
    restore.perform(run, sites=sites)
    try:
        assert run.site != site_urls[0]
        new = Tenant.objects.get(slug=run.new_slug)
        assert sales_snapshot(new) == original
        assert BackupCopy.objects.get(backup=backup, site=site_urls[0]).state == BackupCopy.MISMATCH
    finally:
        _drop_restored(run.new_slug)


def test_restore_works_with_two_of_three_sites_deleted(data_tenant, sites, site_urls):
    """C3, C4: with two sites wiped out, the restore comes from the third."""
    import shutil

    tenant = data_tenant.tenant
    original = sales_snapshot(tenant)
    backup = service.run_backup(service.tenant_target(tenant), sites=sites)
    for url in site_urls[:2]:
        shutil.rmtree(site_folder(url))
    run = restore.request_restore(backup, Restore.SIDE_BY_SIDE, "test")
    restore.perform(run, sites=configured_sites(site_urls))
    try:
        assert run.state == Restore.DONE and run.site == site_urls[2]
        assert sales_snapshot(Tenant.objects.get(slug=run.new_slug)) == original
    finally:
        _drop_restored(run.new_slug)


def test_wrong_private_key_gives_one_clear_error(data_tenant, sites, tmp_path):
    """C4: a restore with another private key says so in one line; nothing is created."""
    import pyrage

    backup = service.run_backup(service.tenant_target(data_tenant.tenant), sites=sites)
    other = tmp_path / "other-identity.txt"
    other.write_text(str(pyrage.x25519.Identity.generate()) + "\n")
    right = configured_keys()
    wrong = Keys(right.recipients, other, right.signing_pem)
    before = set(Tenant.objects.values_list("slug", flat=True))
    run = restore.request_restore(backup, Restore.SIDE_BY_SIDE, "test")
    with pytest.raises(sources.WrongKey) as error:
        restore.perform(run, sites=sites, keys=wrong)
    message = str(error.value)
    assert "cannot be decrypted with the private key in" in message and "\n" not in message
    assert str(other) in message
    assert set(Tenant.objects.values_list("slug", flat=True)) == before
    run.refresh_from_db()
    assert run.state == Restore.FAILED


def test_forged_manifest_is_caught(data_tenant, sites, site_urls):
    """C8: a manifest altered on a site (its signature no longer matches) is a mismatch."""
    backup = service.run_backup(service.tenant_target(data_tenant.tenant), sites=sites)
    path = site_folder(site_urls[1]) / backup.prefix / "manifest.json"
    sealed = json.loads(path.read_bytes())
    sealed["manifest"]["row_counts"]["sales_contact"] = 0
    path.write_text(json.dumps(sealed))
    bad = service.verify_backup(backup, sites)
    assert [(c.site, c.state) for c in bad] == [(site_urls[1], BackupCopy.MISMATCH)]
    assert "signature is invalid" in bad[0].error


def test_live_restore_swaps_after_verifying_and_keeps_previous(data_tenant, sites):
    """C4: onto live: the data returns to the backup's, the replaced database is kept and
    can be swapped back (rollback), both audited in the tenant's log."""
    from oxygis.access.actors import system
    from oxygis.audit.models import AuditEvent
    from oxygis.sales.models import Contact
    from oxygis.tenancy.databases import forget_tenant_database, tenant_context
    from oxygis.tenancy.engines import engine_for

    tenant = data_tenant.tenant
    original = sales_snapshot(tenant)
    backup = service.run_backup(service.tenant_target(tenant), sites=sites)
    with tenant_context(tenant), system(reason="test: change data after the backup"):
        Contact.objects.create(name="After backup")
    forget_tenant_database(tenant)
    assert sales_snapshot(tenant) != original

    run = restore.request_restore(backup, Restore.LIVE, "operator (test)")
    restore.perform(run, sites=sites)
    assert run.state == Restore.DONE and run.previous_database
    assert sales_snapshot(tenant) == original
    with tenant_context(tenant):
        event = AuditEvent.objects.filter(action="backup.restored_live").get()
        assert event.details["backup"] == backup.short_id
    forget_tenant_database(tenant)
    # The previous database holds the later data, for a rollback.
    engine = engine_for(tenant.database_server)
    from oxygis.backups.dumps import DatabaseRef, inspect

    ref = DatabaseRef.from_entry(engine.entry_named(tenant, run.previous_database))
    if ref.engine == "postgresql":
        # Kept closed to every session; an operator opens it to roll back or compare.
        with pytest.raises(BackupError, match="not currently accepting connections"):
            inspect(ref)
        from psycopg import sql

        with engine.admin() as conn:
            conn.execute(
                sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(
                    sql.Identifier(ref.name)
                )
            )
    kept = inspect(ref)
    assert kept.row_counts["sales_contact"] == len(original["contacts"]) + 1

    # Rolled back by the operator: the later data is live again, the restored data kept.
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("backup", "rollback", "--tenant", tenant.slug, "--yes", stdout=out)
    assert "kept as" in out.getvalue()
    after = sales_snapshot(tenant)
    assert after != original and len(after["contacts"]) == len(original["contacts"]) + 1
    with tenant_context(tenant):
        assert AuditEvent.objects.filter(action="backup.rolled_back").exists()
    forget_tenant_database(tenant)


def test_older_schema_is_migrated_after_restore(data_tenant, sites):
    """C4: a backup taken before a migration restores and is brought to the current schema."""
    from django.core.management import call_command

    from oxygis.backups.dumps import DatabaseRef, inspect
    from oxygis.tenancy.databases import forget_tenant_database, tenant_context
    from oxygis.tenancy.engines import engine_for

    tenant = data_tenant.tenant
    with tenant_context(tenant) as alias:
        call_command("migrate", "accounts", "0002", database=alias, verbosity=0)
    forget_tenant_database(tenant)
    backup = service.run_backup(service.tenant_target(tenant), sites=sites)
    assert "accounts.0003_alter_user_options" not in backup.manifest["migrations"]
    run = restore.request_restore(backup, Restore.SIDE_BY_SIDE, "test")
    restore.perform(run, sites=sites)
    try:
        new = Tenant.objects.get(slug=run.new_slug)
        state = inspect(DatabaseRef.from_entry(engine_for(new.database_server).tenant_entry(new)))
        assert "accounts.0003_alter_user_options" in state.migrations
    finally:
        _drop_restored(run.new_slug)


def test_one_backup_per_database_at_a_time(data_tenant, sites):
    """C3: a second backup of a database that is being backed up is refused; a lease left
    by a dead process is taken over."""
    target = service.tenant_target(data_tenant.tenant)
    with LeaseGuard(target.key, "held by the test"), pytest.raises(LeaseHeld):
        service.run_backup(target, sites=sites)
    from django.utils import timezone

    from oxygis.backups.models import Lease

    Lease.objects.create(
        target=target.key,
        holder=f"{socket.gethostname()}:999999999:dead",
        expires_at=timezone.now() + timezone.timedelta(hours=1),
    )
    assert service.run_backup(target, sites=sites).state == Backup.GOOD


def test_degraded_backup_is_resynced_to_good(data_tenant, sites, site_urls):
    """C3: with a copy missing, the backup is degraded; a re-sync copies it and it is good."""
    import shutil

    backup = service.run_backup(service.tenant_target(data_tenant.tenant), sites=sites)
    shutil.rmtree(site_folder(site_urls[2]) / backup.prefix)
    service.verify_backup(backup, sites)
    backup.refresh_from_db()
    assert backup.state == Backup.DEGRADED
    assert backup.copies.get(site=site_urls[2]).state == BackupCopy.MISSING
    assert service.resync(backup, sites).state == Backup.GOOD
    assert (site_folder(site_urls[2]) / backup.prefix / "dump.age").exists()


def test_unwritable_site_makes_a_degraded_backup(data_tenant, site_urls, tmp_path):
    """C3: a site that cannot be written does not lose the backup: degraded, not good."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the site's folder should be")
    urls = [*site_urls[:2], (blocker / "site").as_uri()]
    from oxygis.backups.sites import Site, SiteError

    good_sites = configured_sites(urls[:2])
    with pytest.raises(SiteError):
        Site(urls[2])  # a bad site is a clear configuration error, too

    class Broken(Site):
        def __init__(self):
            self.name, self.scheme = urls[2], "file"

        def writer(self, path):
            raise SiteError(f"site {self.name}: cannot write {path}: disk full")

        def get(self, path):
            raise SiteError(f"site {self.name}: {path} is missing")

    backup = service.run_backup(
        service.tenant_target(data_tenant.tenant), sites=[*good_sites, Broken()]
    )
    assert backup.state == Backup.DEGRADED
    assert backup.copies.get(site=urls[2]).state == BackupCopy.FAILED


def test_cli_run_list_verify_and_errors(data_tenant, site_urls):
    """C1: the operator's commands: run, list (id, time, state, sites), verify; errors are
    one line with exit code 2."""
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import CommandError
    from django.test import override_settings

    slug = data_tenant.tenant.slug
    out = StringIO()
    with override_settings(BACKUP_SITES=site_urls):
        call_command("backup", "run", "--tenant", slug, stdout=out, stderr=StringIO())
        assert "GOOD" in out.getvalue() and "verified on 3 of 3 sites" in out.getvalue()
        out = StringIO()
        call_command("backup", "list", "--tenant", slug, stdout=out)
        backup = Backup.objects.filter(target=data_tenant.tenant.id.hex).first()
        assert backup.short_id in out.getvalue() and "good" in out.getvalue()
        out = StringIO()
        call_command("backup", "verify", "--tenant", slug, stdout=out)
        assert f"{backup.short_id}" in out.getvalue() and ": ok" in out.getvalue()
        for args in (
            ["backup", "verify", "--tenant", slug, "--backup", "zz"],
            ["backup", "list", "--tenant", "no-such-tenant"],
            ["backup", "restore", "--tenant", slug, "--backup", "0000", "--side-by-side"],
        ):
            with pytest.raises(CommandError) as failed:
                call_command(*args, stdout=StringIO())
            assert failed.value.returncode == 2 and "\n" not in str(failed.value)


def test_restore_of_a_failed_backup_is_refused(data_tenant, sites):
    """C4: only a verified backup can be restored."""
    backup = service.run_backup(service.tenant_target(data_tenant.tenant), sites=sites)
    Backup.objects.filter(pk=backup.pk).update(state=Backup.FAILED)
    backup.refresh_from_db()
    with pytest.raises(BackupError, match="cannot be restored"):
        restore.request_restore(backup, Restore.SIDE_BY_SIDE, "test")


def test_catalog_backup_and_restore_test(sites):
    """C8: the catalog is backed up like a tenant, and a scratch restore test of it passes."""
    backup = service.run_backup(service.catalog_target(), sites=sites)
    assert backup.state == Backup.GOOD and backup.tenant is None
    assert "tenancy_tenant" in backup.manifest["row_counts"]
    run = restore.request_restore(backup, Restore.TEST, "test")
    restore.perform(run, sites=sites)
    assert run.state == Restore.DONE and "verified" in run.detail


def test_site_url_refuses_credentials_and_unknown_options():
    """C2: secrets never sit in a site URL; unknown options are an error, not ignored."""
    from oxygis.backups.sites import Site, SiteError

    for url in (
        "az://backups/x?account_key=secret",
        "s3://user:pass@bucket/x",
        "ftp://example.org/x",
        "file://relative/path",
    ):
        with pytest.raises(SiteError):
            Site(url)


def test_a_site_failing_mid_read_hands_over_to_the_next(data_tenant, sites, site_urls):
    """C3, C4: when a site's connection breaks in the middle of a copy, the half-restored
    target is discarded and the restore starts over from the next site."""
    from oxygis.backups.sites import Site, SiteError, SiteReader

    tenant = data_tenant.tenant
    original = sales_snapshot(tenant)
    backup = service.run_backup(service.tenant_target(tenant), sites=sites)

    class Breaking:
        def __init__(self, raw):
            self.raw, self.calls = raw, 0

        def read(self, size=-1):
            self.calls += 1
            if self.calls > 1:
                raise ConnectionResetError("connection reset by peer")
            return self.raw.read(size)

    class FlakySite(Site):
        def reader(self, path):
            inner = super().reader(path)
            return SiteReader(Breaking(inner), lambda exc: SiteError(f"site {self.name}: {exc}"))

    flaky = FlakySite(site_urls[0])
    run = restore.request_restore(backup, Restore.SIDE_BY_SIDE, "test")
    restore.perform(run, sites=[flaky, *sites[1:]])
    try:
        assert run.site == site_urls[1]
        assert sales_snapshot(Tenant.objects.get(slug=run.new_slug)) == original
    finally:
        _drop_restored(run.new_slug)


def test_cli_restores_side_by_side_and_live(data_tenant, site_urls):
    """C4: the operator's restore commands: the newest good backup by default, a live
    restore only with confirmation, each printing where the data went."""
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import CommandError
    from django.test import override_settings

    tenant = data_tenant.tenant
    original = sales_snapshot(tenant)
    with override_settings(BACKUP_SITES=site_urls):
        call_command("backup", "run", "--tenant", tenant.slug, stdout=StringIO())
        out = StringIO()
        call_command("backup", "restore", "--tenant", tenant.slug, "--side-by-side", stdout=out)
        run = Restore.objects.filter(backup__target=tenant.id.hex).first()
        try:
            assert f"restored side by side as tenant {run.new_slug}" in out.getvalue()
            assert sales_snapshot(Tenant.objects.get(slug=run.new_slug)) == original
        finally:
            _drop_restored(run.new_slug)
        with pytest.raises(CommandError) as refused:
            call_command("backup", "restore", "--tenant", tenant.slug, "--live")
        assert refused.value.returncode == 2 and "add --yes" in str(refused.value)
        out = StringIO()
        call_command("backup", "restore", "--tenant", tenant.slug, "--live", "--yes", stdout=out)
        assert "the previous database is kept as" in out.getvalue()
    assert sales_snapshot(tenant) == original
