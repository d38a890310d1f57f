from django.db import models
from django.utils import timezone


class AuditEvent(models.Model):
    """One security-relevant event, in the database of the tenant it concerns.

    Rows are only ever added (``events.record``), as links of a hash chain per database
    (C17): ``seq`` counts 1, 2, 3... without gaps, ``prev_hash`` is the previous event's
    ``hash`` and ``hash`` the SHA-256 of ``prev_hash`` and this event's canonical form
    (``chain.canonical``). An edited, deleted, inserted or reordered row breaks the chain;
    the worker signs each chain's head (backups/digests.py), so that truncating it, or
    rewriting it whole, is caught too (``oxygis audit verify``). On PostgreSQL the tenant
    role may only read and add rows (tenancy/engines/postgresql.py, ``protect_audit``).
    """

    seq = models.BigIntegerField(unique=True, editable=False)
    at = models.DateTimeField(default=timezone.now, db_index=True, editable=False)
    action = models.CharField(max_length=64, db_index=True, editable=False)
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor = models.CharField(max_length=200, blank=True, editable=False)  # name then
    target = models.CharField(max_length=200, blank=True, editable=False)
    ip = models.GenericIPAddressField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64, editable=False)
    hash = models.CharField(max_length=64, editable=False)

    class Meta:
        ordering = ["-seq"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.action} {self.actor} {self.target}"
