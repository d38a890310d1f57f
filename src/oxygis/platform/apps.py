from django.apps import AppConfig


class PlatformConfig(AppConfig):
    """Orchestration above the domain apps: provisioning, demo, tenant life cycle, the
    console, staff, support tickets and access grants (C14)."""

    name = "oxygis.platform"
    label = "platform"
    verbose_name = "Platform"

    def ready(self):
        from oxygis.backups.worker import register_job

        from .grants import expire_due

        register_job("access grants", expire_due)
