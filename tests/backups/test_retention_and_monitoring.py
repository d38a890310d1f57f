"""Retention per plan (C1), the schedule, and monitoring with alerts (C8)."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from oxygis.backups import monitor, service
from oxygis.backups.alerts import open_alerts
from oxygis.backups.models import Alert, Backup, Restore
from oxygis.backups.worker import Worker, is_due, slot_offset
from oxygis.tenancy.models import Tenant
from tests.fixtures import mails_to


def _fake_history(target_key: str, days: int, now, state=Backup.GOOD) -> None:
    """One backup a day for ``days`` days (rows only: what retention decides on)."""
    Backup.objects.bulk_create(
        Backup(
            target=target_key,
            label="history",
            engine="sqlite",
            database="x",
            state=state,
            started_at=now - timedelta(days=day, hours=1),
        )
        for day in range(days)
    )


def test_retention_keeps_14_dailies_and_52_weeklies(sites):
    """C1: after 400 days of daily backups, the plan keeps every daily of the last 14 days
    and one per week for 52 weeks; everything else is pruned."""
    now = timezone.now()
    key = f"history-{random.getrandbits(32):08x}"
    _fake_history(key, 400, now)
    pruned = service.prune(key, 14, 52, sites, now=now)
    kept = list(Backup.objects.filter(target=key))
    assert len(pruned) + len(kept) == 400
    recent = [b for b in kept if b.started_at >= now - timedelta(days=14)]
    assert len(recent) == 14
    older = [b for b in kept if b.started_at < now - timedelta(days=14)]
    weeks = {b.started_at.isocalendar()[:2] for b in older}
    assert len(weeks) == len(older)  # one per week
    assert min(b.started_at for b in kept) >= now - timedelta(weeks=52, days=1)
    assert 48 <= len(older) <= 52


def test_nothing_is_pruned_until_a_replacement_is_good(sites):
    """C1: old copies stay while every newer backup is degraded or failed."""
    now = timezone.now()
    key = f"history-{random.getrandbits(32):08x}"
    _fake_history(key, 30, now, state=Backup.DEGRADED)
    assert service.prune(key, 14, 52, sites, now=now) == []
    assert Backup.objects.filter(target=key).count() == 30
    # One good old backup and newer failures: the good one is never pruned.
    Backup.objects.filter(target=key).update(state=Backup.FAILED)
    oldest = Backup.objects.filter(target=key).order_by("started_at").first()
    Backup.objects.filter(pk=oldest.pk).update(state=Backup.GOOD)
    service.prune(key, 14, 52, sites, now=now)
    assert Backup.objects.filter(pk=oldest.pk).exists()


def test_daily_schedule_is_spread_and_idempotent(data_tenant, sites):
    """C1: one backup a day per database, each at its own time of day; a second worker
    pass finds nothing due."""
    target = service.tenant_target(data_tenant.tenant)
    now = timezone.now()
    assert is_due(target, now)  # never backed up: right away
    service.run_backup(target, sites=sites)
    assert not is_due(target, timezone.now())
    offsets = {slot_offset(f"{i:032x}") for i in range(50)}
    assert len(offsets) > 45  # start times spread over the day
    slot = now.replace(hour=0, minute=0, second=0, microsecond=0) + slot_offset(target.key)
    later = slot + timedelta(days=1, minutes=1)
    assert is_due(target, later)


def test_no_good_backup_in_26_hours_raises_one_alert_by_mail(data_tenant, sites, tmp_path):
    """C8: a tenant with no good backup within 26 hours is alerted on: in the log, by
    e-mail to OXYGIS_OPS_EMAIL (once), and in the console's list; it clears when fixed."""
    tenant = data_tenant.tenant
    Tenant.objects.filter(pk=tenant.pk).update(created_at=timezone.now() - timedelta(days=3))
    old = service.run_backup(service.tenant_target(tenant), sites=sites)
    Backup.objects.filter(pk=old.pk).update(started_at=timezone.now() - timedelta(hours=30))
    key = f"no-good-backup:{tenant.id.hex}"
    ops = f"ops-{tenant.slug}@oxygis.example"
    with override_settings(OPS_EMAIL=ops):
        monitor.check_windows()
        monitor.check_windows()
    alert = Alert.objects.get(key=key, resolved_at__isnull=True)
    assert tenant.slug in alert.message and "26 hours" in alert.message
    assert len(mails_to(ops)) == 1
    assert alert in open_alerts()
    service.run_backup(service.tenant_target(tenant), sites=sites)
    monitor.check_windows()
    alert.refresh_from_db()
    assert alert.resolved_at is not None


def test_a_new_tenant_without_a_good_backup_after_an_hour_is_alerted(data_tenant, sites):
    """C8: a tenant created over an hour ago and never backed up is alerted on (the
    worker backs up a new tenant at once: an hour without one means it is not)."""
    tenant = data_tenant.tenant
    key = f"no-good-backup:{tenant.id.hex}"
    monitor.check_windows()
    assert not Alert.objects.filter(key=key, resolved_at__isnull=True).exists()
    Tenant.objects.filter(pk=tenant.pk).update(created_at=timezone.now() - timedelta(minutes=61))
    monitor.check_windows()
    alert = Alert.objects.get(key=key, resolved_at__isnull=True)
    assert "within an hour of its creation" in alert.message
    service.run_backup(service.tenant_target(tenant), sites=sites)
    monitor.check_windows()
    alert.refresh_from_db()
    assert alert.resolved_at is not None


def test_unreachable_site_raises_an_alert(sites, tmp_path):
    """C8: a site that cannot be written is alerted on."""
    from oxygis.backups.sites import Site, SiteError

    class Unreachable(Site):
        def __init__(self):
            self.name, self.scheme = "az://gone/x?account_name=nobody", "az"

        def put(self, path, data):
            raise SiteError(f"site {self.name}: cannot write {path}: connection refused")

    failed = monitor.check_sites([*sites, Unreachable()])
    assert list(failed) == ["az://gone/x?account_name=nobody"]
    assert Alert.objects.filter(key="site:az://gone/x?account_name=nobody").exists()
    monitor.check_sites(sites)  # the healthy ones raise nothing
    assert not Alert.objects.filter(key__startswith=f"site:{sites[0].name}").exists()


def test_weekly_restore_test_records_its_result(data_tenant, sites):
    """C8: the worker restores a sample of backups into scratch databases once a week,
    records each result, and does not repeat within the week."""
    service.run_backup(service.tenant_target(data_tenant.tenant), sites=sites)
    Restore.objects.filter(mode=Restore.TEST).delete()
    assert monitor.restore_test_due()
    runs = monitor.run_restore_tests(sites=sites, sample=50)
    ours = [r for r in runs if r.backup.target == data_tenant.tenant.id.hex]
    assert ours and ours[0].state == Restore.DONE
    assert not monitor.restore_test_due()


def test_failed_restore_test_alerts(data_tenant, sites, site_urls):
    """C8: a restore test that fails (all copies gone) raises an alert."""
    import shutil

    from .conftest import site_folder

    backup = service.run_backup(service.tenant_target(data_tenant.tenant), sites=sites)
    for url in site_urls:
        shutil.rmtree(site_folder(url) / backup.prefix)
    Restore.objects.filter(mode=Restore.TEST).delete()
    from oxygis.backups import restore

    run = restore.request_restore(backup, Restore.TEST, "test")
    with pytest.raises(Exception, match="no site holds a usable copy"):
        restore.perform(run, sites=sites)
    assert Alert.objects.filter(
        key=f"restore-failed:{backup.target}", resolved_at__isnull=True
    ).exists()


def test_a_restore_test_cut_short_is_run_again_without_an_alert(data_tenant, sites):
    """C8: a restore test whose process was killed is finished as failed by the next
    pass, raises no alert (it says nothing about the backup) and is run again, not in a
    week."""
    from oxygis.backups import swaps

    backup = service.run_backup(service.tenant_target(data_tenant.tenant), sites=sites)
    Restore.objects.filter(mode=Restore.TEST).delete()
    Restore.objects.create(
        backup=backup, mode=Restore.TEST, requested_by="worker", state=Restore.RUNNING
    )
    assert not monitor.restore_test_due()
    (run,) = swaps.recover_interrupted()
    run.refresh_from_db()
    assert run.state == Restore.FAILED and "interrupted" in run.detail
    assert not open_alerts().filter(key=f"restore-failed:{backup.target}").exists()
    assert monitor.restore_test_due()
    monitor.run_restore_tests(sites=sites, sample=50)
    assert not monitor.restore_test_due()


def test_worker_pass_backs_up_what_is_due(data_tenant, sites):
    """C1, C8: one worker pass backs up a database that has no backup yet."""
    worker = Worker(sites=sites, restore_tests=False)
    worker.tick()
    backup = Backup.objects.filter(target=data_tenant.tenant.id.hex).first()
    assert backup is not None and backup.state == Backup.GOOD and backup.scheduled
    count = Backup.objects.filter(target=data_tenant.tenant.id.hex).count()
    worker.tick()
    assert Backup.objects.filter(target=data_tenant.tenant.id.hex).count() == count
