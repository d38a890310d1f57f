from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "oxygis.accounts"
    verbose_name = "Accounts"
