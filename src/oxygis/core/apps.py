from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "oxygis.core"
    label = "core"
    verbose_name = "Core"
