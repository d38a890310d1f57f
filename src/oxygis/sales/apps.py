from django.apps import AppConfig


class SalesConfig(AppConfig):
    name = "oxygis.sales"
    verbose_name = "Sales"
