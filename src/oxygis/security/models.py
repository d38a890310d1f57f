from django.db import models
from django.utils import timezone


class ScanRun(models.Model):
    """One scan of every kind of host we serve; ``slot`` is unique, so two workers never
    run the same scheduled scan twice."""

    slot = models.DateTimeField(unique=True, editable=False)
    started_at = models.DateTimeField(default=timezone.now, editable=False)
    finished_at = models.DateTimeField(null=True, blank=True, editable=False)
    findings = models.PositiveIntegerField(default=0, editable=False)
    requested_by = models.CharField(max_length=200, blank=True, editable=False)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"security scan of {self.started_at:%Y-%m-%d %H:%M}"


class ScanResult(models.Model):
    """What one kind of host (or the server itself) looked like to the scan."""

    SERVER, TENANT, CONSOLE, PORTAL = "server", "tenant", "console", "portal"
    KINDS = [
        (SERVER, "Server (deployment, data folder, dependencies)"),
        (TENANT, "A tenant's site"),
        (CONSOLE, "The console"),
        (PORTAL, "The customer portal"),
    ]

    run = models.ForeignKey(ScanRun, on_delete=models.CASCADE, related_name="results")
    # Written by the scan alone, never by a form or the API.
    kind = models.CharField(max_length=10, choices=KINDS, editable=False)
    url = models.CharField(max_length=500, blank=True, editable=False)
    grade = models.CharField(max_length=3, blank=True, editable=False)
    score = models.IntegerField(null=True, blank=True, editable=False)
    findings = models.JSONField(default=list, editable=False)  # [{"check", "message"}]
    report = models.JSONField(default=dict, editable=False)

    class Meta:
        ordering = ["run", "id"]  # in the order scanned: server, tenant, portal, console
        constraints = [
            models.UniqueConstraint(fields=["run", "kind"], name="scan_result_one_per_kind")
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {len(self.findings)} finding(s)"
