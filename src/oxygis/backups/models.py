"""Catalog records of backups, their copies on each site, restores and alerts.

The backups themselves live on the sites (encrypted, with a signed manifest beside each);
these rows are the platform's index of them and the state machine of the work.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

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
    """A restore: side by side (new tenant), live (swap), or a scratch restore test."""

    SIDE_BY_SIDE, LIVE, TEST = "side_by_side", "live", "test"
    MODES = [(SIDE_BY_SIDE, "Side by side"), (LIVE, "Onto live"), (TEST, "Restore test")]
    QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
    STATES = [(QUEUED, "Queued"), (RUNNING, "Running"), (DONE, "Done"), (FAILED, "Failed")]

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Kept when retention later prunes the backup: the restore's history stays.
    backup = models.ForeignKey(
        Backup, null=True, on_delete=models.SET_NULL, related_name="restores"
    )
    mode = models.CharField(max_length=20, choices=MODES)
    state = models.CharField(max_length=10, choices=STATES, default=QUEUED, db_index=True)
    requested_by = models.CharField(
        max_length=200, editable=False
    )  # "operator" or "<user> at <slug>"
    requested_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    new_slug = models.CharField(
        max_length=60, blank=True, editable=False
    )  # side by side: the new tenant
    previous_database = models.CharField(
        max_length=255, blank=True, editable=False
    )  # live: kept for rollback
    site = models.CharField(max_length=500, blank=True, editable=False)  # the copy it was read from
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at"]

    def __str__(self) -> str:
        return f"{self.mode} restore {self.state}"


class Alert(models.Model):
    """Something an operator must look at (C8). Open until its condition clears."""

    key = models.CharField(max_length=200, db_index=True, editable=False)  # one open alert per key
    message = models.TextField()
    raised_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)

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
