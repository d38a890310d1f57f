"""A backup killed at any moment is never marked good (C3); Azure sites via Azurite and
S3 sites via an S3-compatible server (C2)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from oxygis.backups import restore, service
from oxygis.backups.models import Backup, BackupCopy, Restore
from oxygis.backups.sites import configured_sites
from oxygis.platform.provisioning import drop_tenant
from oxygis.tenancy.models import Tenant

from .conftest import add_ballast, file_site_urls, sales_snapshot, site_folder


def _backup_process(slug, site_urls):
    env = {**os.environ, "OXYGIS_BACKUP_SITES": " ".join(site_urls)}
    return subprocess.Popen(
        [sys.executable, "-m", "oxygis.cli", "backup", "run", "--tenant", slug],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_kill_9_at_random_moments_never_leaves_a_partial_backup_good(data_tenant, tmp_path):
    """C3: SIGKILL during a backup, at random moments, never leaves a backup marked good
    that is not whole on every site; the next run marks the interrupted one failed,
    removes its objects, and makes a good backup."""
    tenant = data_tenant.tenant
    add_ballast(tenant, 40)  # incompressible: the backup takes a moment to stream
    urls = file_site_urls(tmp_path / "sites")
    sites = configured_sites(urls)
    started = time.monotonic()
    assert _backup_process(tenant.slug, urls).wait() == 0
    lifetime = time.monotonic() - started  # of a whole run, start-up included
    rng = random.Random(os.environ.get("OXYGIS_TEST_KILL_SEED", "6"))
    killed = 0
    for _ in range(6):
        process = _backup_process(tenant.slug, urls)
        time.sleep(rng.uniform(0.05, 0.95) * lifetime)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            killed += 1
        process.wait()
        for backup in Backup.objects.filter(target=tenant.id.hex, state=Backup.GOOD):
            # Whatever the moment of the kill, a good backup is whole on three sites.
            assert service.verify_backup(backup, sites) == [], backup.short_id
    assert killed >= 3, "the kills should land while backups run"
    final = service.run_backup(service.tenant_target(tenant), sites=sites)
    assert final.state == Backup.GOOD
    leftovers = Backup.objects.filter(target=tenant.id.hex, state=Backup.RUNNING)
    assert not leftovers.exists()
    for failed in Backup.objects.filter(target=tenant.id.hex, state=Backup.FAILED):
        assert "interrupted" in failed.error
        left = [p for u in urls for p in (site_folder(u) / failed.prefix).rglob("*") if p.is_file()]
        assert left == [], f"objects of interrupted backup {failed.short_id} remain"


def _round_trip_through(cloud_url: str, tenant, tmp_path) -> None:
    """Back up to two local sites and ``cloud_url`` in multipart uploads, then delete the
    local sites: the cloud copy alone must restore data equal to the original."""
    import shutil

    add_ballast(tenant, 12)  # more than two 5 MiB upload parts
    urls = [*file_site_urls(tmp_path / "sites", ("a", "b")), cloud_url]
    original = sales_snapshot(tenant)
    backup = service.run_backup(service.tenant_target(tenant), sites=configured_sites(urls))
    assert backup.state == Backup.GOOD and backup.stored_bytes > 10 * 1024 * 1024
    assert backup.copies.get(site=cloud_url).state == BackupCopy.VERIFIED
    for url in urls[:2]:
        shutil.rmtree(site_folder(url))
    run = restore.request_restore(backup, Restore.SIDE_BY_SIDE, "test")
    restore.perform(run, sites=configured_sites(urls))
    try:
        assert run.site == cloud_url
        assert sales_snapshot(Tenant.objects.get(slug=run.new_slug)) == original
    finally:
        drop_tenant(Tenant.objects.get(slug=run.new_slug))


def test_azure_site_end_to_end(azurite, data_tenant, tmp_path):
    """C2: an az:// site (Azurite) takes a multipart backup beside two local sites,
    verifies it, and alone serves a restore whose data equals the original."""
    _round_trip_through(azurite(), data_tenant.tenant, tmp_path)


def test_s3_site_end_to_end(s3_server, data_tenant, tmp_path):
    """C2: the same through an s3:// site (moto's S3 server)."""
    _round_trip_through(s3_server(), data_tenant.tenant, tmp_path)
