from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "oxygis.accounts"
    verbose_name = "Accounts"

    def ready(self):
        from . import signals  # noqa: F401 - connects the receivers
        from .roles import ensure_builtin_roles

        post_migrate.connect(ensure_builtin_roles, dispatch_uid="oxygis.builtin_roles")
