"""What the backup commands (``oxygis backup``, ``oxygis dr``) share."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from oxygis.tenancy.engines import EngineError
from oxygis.tenancy.tenants import TenantError

from .errors import BackupError


class ActionCommand(BaseCommand):
    """A command of actions (``do_<action>``, a required sub-command): a refusal or
    failure is one line on stderr and exit code 2, never a traceback."""

    def handle(self, *args, action, **options):
        self._tty = sys.stderr.isatty()
        try:
            return getattr(self, f"do_{action}")(**options)
        except (BackupError, TenantError, EngineError) as exc:
            raise CommandError(str(exc), returncode=2) from None
        finally:
            if self._tty:  # end a progress line left on the terminal
                self.stderr.write("")
