from django.apps import AppConfig


class BackupsConfig(AppConfig):
    name = "oxygis.backups"
    label = "backups"
    verbose_name = "Backups"

    def ready(self):
        from oxygis.audit.patterns import suspicious

        from .alerts import alert_on_suspicion

        suspicious.connect(alert_on_suspicion, dispatch_uid="backups.alert_on_suspicion")
