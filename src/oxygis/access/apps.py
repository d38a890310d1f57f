from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "oxygis.access"
    verbose_name = "Access"
