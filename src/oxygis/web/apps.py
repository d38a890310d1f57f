from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "oxygis.web"
    verbose_name = "Web"
