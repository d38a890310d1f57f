from django.db import models


class AuditEvent(models.Model):
    """One security-relevant event, in the database of the tenant it concerns.

    Rows are only ever added (``record``); nothing in the application updates or
    deletes them.
    """

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    action = models.CharField(max_length=64, db_index=True, editable=False)
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor = models.CharField(max_length=200, blank=True, editable=False)  # name then
    target = models.CharField(max_length=200, blank=True, editable=False)
    ip = models.GenericIPAddressField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.action} {self.actor} {self.target}"
