from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "oxygis.audit"
    verbose_name = "Audit"
