from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "oxygis.tenancy"
    verbose_name = "Tenancy"
