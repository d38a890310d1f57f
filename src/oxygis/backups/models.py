"""Catalog records of backups, their copies on each site, restores and alerts.

The backups themselves live on the sites (encrypted, with a signed manifest beside each);
these rows are the platform's index of them and the state machine of the work.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from oxygis.core.text import validate_single_line

CATALOG_TARGET = "catalog"


class BackupQuerySet(models.QuerySet):
    def good(self):
        return self.filter(state=Backup.GOOD)

    def restorable(self):
        """Verified on at least one site: good, or degraded but readable somewhere."""
        return self.filter(state__in=(Backup.GOOD, Backup.DEGRADED))


class Backup(models.Model):
    """One dump of one database. ``good`` only once verified on >= 3 sites (C3)."""

    RUNNING, GOOD, DEGRADED, FAILED = "running", "good", "degraded", "failed"
    STATES = [(RUNNING, "Running"), (GOOD, "Good"), (DEGRADED, "Degraded"), (FAILED, "Failed")]

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # "catalog", or the tenant's id in hex: stable even if the tenant is renamed or dropped.
    target = models.CharField(max_length=40, db_index=True, editable=False)
    tenant = models.ForeignKey(
        "tenancy.Tenant", null=True, blank=True, on_delete=models.SET_NULL, related_name="backups"
    )
    label = models.CharField(
        max_length=60, editable=False
    )  # the tenant's slug (or "catalog") at the time
    engine = models.CharField(max_length=20, editable=False)
    database = models.CharField(max_length=1024, editable=False)  # database name, or file path
    state = models.CharField(max_length=10, choices=STATES, default=RUNNING, db_index=True)
    scheduled = models.BooleanField(default=False)
    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(
        max_length=200, blank=True, editable=False
    )  # host:pid:nonce that ran it
    dump_bytes = models.BigIntegerField(default=0)  # the plain dump, before compression
    stored_bytes = models.BigIntegerField(default=0)  # what each site holds
    sha256 = models.CharField(max_length=64, blank=True, editable=False)  # of what each site holds
    manifest = models.JSONField(default=dict, blank=True)  # the signed document
    error = models.TextField(blank=True)

    objects = BackupQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.label} {self.started_at:%Y-%m-%d %H:%M} {self.state}"

    @property
    def short_id(self) -> str:
        return self.id.hex[:12]

    @property
    def prefix(self) -> str:
        """Where this backup's objects live on every site."""
        return f"{self.target}/{self.id.hex}"


class BackupCopy(models.Model):
    """A backup's copy on one site, and what the last read-back found."""

    PENDING, VERIFIED, MISMATCH, MISSING, FAILED = (
        "pending",
        "verified",
        "mismatch",
        "missing",
        "failed",
    )
    STATES = [
        (PENDING, "Pending"),
        (VERIFIED, "Verified"),
        (MISMATCH, "Checksum mismatch"),
        (MISSING, "Missing"),
        (FAILED, "Write failed"),
    ]

    backup = models.ForeignKey(Backup, on_delete=models.CASCADE, related_name="copies")
    site = models.CharField(max_length=500, editable=False)  # the site's URL without credentials
    state = models.CharField(max_length=10, choices=STATES, default=PENDING)
    verified_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["site"]
        constraints = [
            models.UniqueConstraint(fields=["backup", "site"], name="backup_copy_once_per_site")
        ]

    def __str__(self) -> str:
        return f"{self.site}: {self.state}"


class Lease(models.Model):
    """One operation per database at a time, across workers and hosts.

    Taken by an atomic insert or by taking over an expired row; renewed while the work
    runs. A process killed mid-work stops renewing, and its lease lapses.
    """

    target = models.CharField(max_length=40, unique=True, editable=False)
    holder = models.CharField(max_length=200, editable=False)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.target} held by {self.holder}"


class Restore(models.Model):
    """A restore: side by side (new tenant), live (swap), a rollback of a live restore
    (swap back), or a scratch restore test.

    A swap goes through phases recorded here, so that a process killed at any moment
    leaves enough to finish or undo it (``restore.recover_interrupted``): nothing is
    lost and the tenant does not stay in maintenance.
    """

    SIDE_BY_SIDE, LIVE, ROLLBACK, TEST = "side_by_side", "live", "rollback", "test"
    MODES = [
        (SIDE_BY_SIDE, "Side by side"),
        (LIVE, "Onto live"),
        (ROLLBACK, "Rollback of a live restore"),
        (TEST, "Restore test"),
    ]
    QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
    STATES = [(QUEUED, "Queued"), (RUNNING, "Running"), (DONE, "Done"), (FAILED, "Failed")]
    # Phases of a swap (live restore, rollback).
    RESTORING, SWAPPING, SWAPPED = "restoring", "swapping", "swapped"
    PHASES = [(RESTORING, "Restoring beside"), (SWAPPING, "Swapping"), (SWAPPED, "Swapped")]

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Kept when retention later prunes the backup: the restore's history stays.
    backup = models.ForeignKey(
        Backup, null=True, on_delete=models.SET_NULL, related_name="restores"
    )
    mode = models.CharField(max_length=20, choices=MODES)
    state = models.CharField(max_length=10, choices=STATES, default=QUEUED, db_index=True)
    phase = models.CharField(max_length=10, choices=PHASES, blank=True)
    # "operator" or "<user> at <slug>"
    requested_by = models.CharField(max_length=200, editable=False)
    requested_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Side by side: the new tenant.
    new_slug = models.CharField(max_length=60, blank=True, editable=False)
    # Swaps: the database put in place, the one kept for a rollback (until it expires,
    # see KEPT_DATABASE_DAYS), and the tenant's state to return to.
    replacement_database = models.CharField(max_length=255, blank=True, editable=False)
    previous_database = models.CharField(max_length=255, blank=True, editable=False)
    state_before = models.CharField(max_length=20, blank=True, editable=False)
    # The order counter of the database replaced, read before the swap: numbers already
    # given out are never given again (sales.OrderSequence).
    replaced_order_number = models.PositiveIntegerField(null=True, blank=True)
    # Point-in-time restores (no backup): the tenant and the moment asked for.
    tenant = models.ForeignKey(
        "tenancy.Tenant", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    point_in_time = models.DateTimeField(null=True, blank=True)
    # The copy it was read from.
    site = models.CharField(max_length=500, blank=True, editable=False)
    detail = models.TextField(blank=True)
    # What the swap replaced: rows written since the backup point, the last write, and
    # where the report of orders created since then was written.
    report = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-requested_at"]

    def __str__(self) -> str:
        return f"{self.mode} restore {self.state}"

    @property
    def subject(self):
        """The tenant restored: the point-in-time restore's, or its backup's."""
        if self.tenant_id is not None:
            return self.tenant
        return self.backup.tenant if self.backup is not None else None

    @property
    def target_key(self) -> str | None:
        if self.backup is not None:
            return self.backup.target
        return self.tenant.id.hex if self.tenant is not None else None

    @property
    def label(self) -> str:
        if self.backup is not None:
            return self.backup.label
        return self.tenant.slug if self.tenant is not None else "?"


class Alert(models.Model):
    """Something an operator must look at (C8). Open until its condition clears."""

    key = models.CharField(max_length=200, db_index=True, editable=False)  # one open alert per key
    message = models.TextField()
    raised_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    # Someone on the console has seen it and is on it (the alert stays open until its
    # condition clears, or someone resolves it by hand).
    acknowledged_at = models.DateTimeField(null=True, blank=True, editable=False)
    acknowledged_by = models.CharField(max_length=200, blank=True, editable=False)
    resolved_by = models.CharField(max_length=200, blank=True, editable=False)

    class Meta:
        ordering = ["-raised_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["key"],
                condition=models.Q(resolved_at__isnull=True),
                name="alert_one_open_per_key",
            )
        ]

    def __str__(self) -> str:
        return self.message


class WorkerHeartbeat(models.Model):
    """A worker process saying it is alive: written at every pass and during long work.

    ``oxygis backup status`` and the alerts report a worker whose last beat is older
    than two passes; a supervisor (``oxygis worker --supervise``, what ``oxygis serve``
    starts) restarts one that died or hangs."""

    holder = models.CharField(max_length=200, unique=True, editable=False)  # host:pid
    host = models.CharField(max_length=200, editable=False)
    pid = models.PositiveIntegerField()
    interval = models.PositiveIntegerField()  # seconds between passes
    started_at = models.DateTimeField(default=timezone.now)
    beat_at = models.DateTimeField(default=timezone.now, db_index=True)
    passes = models.PositiveIntegerField(default=0)
    # The last pass that failed, and why (one line), until a pass succeeds.
    failing_since = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-beat_at"]

    def __str__(self) -> str:
        return f"worker {self.holder} beat {self.beat_at:%Y-%m-%d %H:%M:%S}"


class Recovery(models.Model):
    """One disaster recovery (`oxygis dr rebuild`): the platform rebuilt from a site (C7)."""

    RUNNING, DONE, FAILED = "running", "done", "failed"
    STATES = [(RUNNING, "Running"), (DONE, "Done"), (FAILED, "Done, with failures")]

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    site = models.CharField(
        max_length=1024, validators=[validate_single_line]
    )  # its URL (sites refuse credentials in URLs)
    state = models.CharField(max_length=10, choices=STATES, default=RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The catalog backup the catalog came from; empty: rebuilt from the manifests.
    catalog_backup = models.CharField(max_length=32, blank=True, validators=[validate_single_line])
    catalog_back_at = models.DateTimeField(null=True, blank=True)
    # A drill restores only this many tenants (0: all).
    sample = models.PositiveIntegerField(default=0)
    manifests_merged = models.PositiveIntegerField(default=0)
    manifests_refused = models.PositiveIntegerField(default=0)
    detail = models.TextField(blank=True)  # the refused manifests, one per line
    # Where tenants are restored (``--onto``); none: this machine's default server.
    server = models.ForeignKey(
        "tenancy.DatabaseServer", null=True, blank=True, on_delete=models.PROTECT
    )

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"rebuild from {self.site} at {self.started_at:%Y-%m-%d %H:%M}"


class RecoveredTenant(models.Model):
    """One tenant of a Recovery: the backup it came back from, its achieved RPO (the
    backup's age when the rebuild started) and RTO (served again, from that start)."""

    PENDING, RESTORING, DONE, FAILED = "pending", "restoring", "done", "failed"
    STATES = [(PENDING, "Pending"), (RESTORING, "Restoring"), (DONE, "Back"), (FAILED, "Failed")]

    recovery = models.ForeignKey(Recovery, on_delete=models.CASCADE, related_name="tenants")
    tenant = models.ForeignKey("tenancy.Tenant", null=True, on_delete=models.SET_NULL)
    slug = models.CharField(max_length=63, validators=[validate_single_line])
    plan = models.CharField(max_length=20, validators=[validate_single_line])
    rank = models.PositiveSmallIntegerField(default=0)  # position of the plan in the order
    # The tenant's state once back.
    state_after = models.CharField(max_length=20, validators=[validate_single_line])
    backup = models.ForeignKey(Backup, null=True, on_delete=models.SET_NULL)
    backup_taken_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=10, choices=STATES, default=PENDING)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    rpo_seconds = models.PositiveIntegerField(null=True, blank=True)
    rto_seconds = models.PositiveIntegerField(null=True, blank=True)
    rpo_target_hours = models.PositiveSmallIntegerField()
    rto_target_hours = models.PositiveSmallIntegerField()
    error = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["recovery", "tenant"], name="one_row_per_tenant")
        ]

    def __str__(self) -> str:
        return f"{self.slug}: {self.state}"


class WalArchive(models.Model):
    """Continuous WAL archiving of one PostgreSQL server with pgBackRest, to every backup
    site (C7: point-in-time recovery). Written by ``oxygis pitr setup`` (backups/pitr.py)."""

    server = models.OneToOneField(
        "tenancy.DatabaseServer", on_delete=models.PROTECT, related_name="wal_archive"
    )
    data_dir = models.CharField(max_length=1024, validators=[validate_single_line])
    os_user = models.CharField(max_length=64, validators=[validate_single_line])
    superuser = models.CharField(max_length=63, validators=[validate_single_line])
    pg_version = models.CharField(max_length=8, validators=[validate_single_line])  # major
    port = models.PositiveIntegerField()
    socket_dir = models.CharField(max_length=1024, validators=[validate_single_line])
    config_path = models.CharField(max_length=1024, validators=[validate_single_line])
    sites = models.JSONField(default=list)  # one repository per site URL, in this order
    archive_timeout = models.PositiveIntegerField(default=60)
    set_up_at = models.DateTimeField(null=True, blank=True)  # archiving checked, first backups
    last_full_at = models.DateTimeField(null=True, blank=True)
    last_backup_at = models.DateTimeField(null=True, blank=True)
    lag_seconds = models.PositiveIntegerField(null=True, blank=True)
    lag_checked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"WAL archive of {self.server}"


class Drill(models.Model):
    """A disaster-recovery drill (C7): `oxygis dr rebuild` rehearsed from one site into a
    scratch place (its own data folder, catalog and database names), with a sample of
    tenants; the measured times against the plans' RTO targets (``backups/drill.py``)."""

    RUNNING, OK, OVER, FAILED = "running", "ok", "over", "failed"
    STATES = [
        (RUNNING, "Running"),
        (OK, "Within targets"),
        (OVER, "Over target"),
        (FAILED, "Failed"),
    ]

    site = models.CharField(max_length=1024, validators=[validate_single_line])
    state = models.CharField(max_length=10, choices=STATES, default=RUNNING)
    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Its scratch folder's name (host~pid~drill-token): what a sweep looks for after a kill.
    scratch = models.CharField(max_length=200, blank=True, validators=[validate_single_line])
    sample = models.PositiveIntegerField(default=0)  # tenants restored in the drill
    tenants_total = models.PositiveIntegerField(default=0)  # tenants on the platform
    jobs = models.PositiveSmallIntegerField(default=1)
    catalog_seconds = models.FloatField(null=True, blank=True)  # the catalog back
    slowest_seconds = models.FloatField(null=True, blank=True)  # the slowest tenant's RTO
    # The whole platform's RTO, extrapolated: catalog + tenants x mean time each / jobs.
    projected_seconds = models.FloatField(null=True, blank=True)
    target_hours = models.PositiveSmallIntegerField(null=True, blank=True)  # strictest plan
    report = models.JSONField(default=list, blank=True)  # per sampled tenant
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"DR drill from {self.site} at {self.started_at:%Y-%m-%d %H:%M}: {self.state}"


class AuditDigest(models.Model):
    """A signed statement of one database's audit chain (C17): "event #seq of database
    ``target`` had hash ``head_hash`` at ``signed_at``", signed with the platform's
    Ed25519 key (backups/keys.py) and copied to every backup site. ``kind`` PRUNED marks
    where retention cut the chain's oldest events off: verification starts there."""

    HEAD, PRUNED = "head", "pruned"

    target = models.CharField(max_length=64, editable=False)  # as Backup.target
    label = models.CharField(max_length=64, editable=False)
    kind = models.CharField(max_length=8, choices=[(HEAD, HEAD), (PRUNED, PRUNED)], editable=False)
    seq = models.BigIntegerField(editable=False)
    head_hash = models.CharField(max_length=64, editable=False)
    signed_at = models.DateTimeField(editable=False)
    key_id = models.CharField(max_length=16, editable=False)
    signature = models.CharField(max_length=100, editable=False)

    class Meta:
        ordering = ["target", "seq", "signed_at"]
        indexes = [
            models.Index(fields=["target", "seq"], name="audit_digest_chain"),
            models.Index(fields=["signed_at"], name="audit_digest_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.label} #{self.seq} ({self.kind}, {self.signed_at:%Y-%m-%d %H:%M})"
