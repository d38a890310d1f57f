from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "oxygis.portal"
    verbose_name = "Customer portal"
