from django.apps import AppConfig


class SecurityConfig(AppConfig):
    """The security self-check and the daily scans of what we serve (S11)."""

    name = "oxygis.security"
    label = "security"
    verbose_name = "Security scans"

    def ready(self):
        from oxygis.backups.worker import register_job

        from .scans import scan_if_due

        register_job("security scan", scan_if_due, long=True)
