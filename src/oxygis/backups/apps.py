from django.apps import AppConfig


class BackupsConfig(AppConfig):
    name = "oxygis.backups"
    label = "backups"
    verbose_name = "Backups"
