from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "oxygis.core"
    label = "core"
    verbose_name = "Core"

    def ready(self):
        from django.urls import register_converter

        from .converters import IdConverter

        # Once, for both URL configurations (tenant hosts and the console).
        register_converter(IdConverter, "id")
