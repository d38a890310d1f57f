"""Django's ``migrate``, with the target database bound for the run.

Data migrations (ours and third parties', e.g. django-axes) may reach models through
the router; binding ``--database`` keeps the router fail-closed everywhere else.
"""

from django.core.management.commands.migrate import Command as DjangoMigrateCommand

from oxygis.tenancy.context import using_database


class Command(DjangoMigrateCommand):
    def handle(self, *args, **options):
        with using_database(options["database"]):
            return super().handle(*args, **options)
