"""Restricted production access (C14): what the ``oxygis`` command lets an operator run,
and the trace every run leaves.

In production the command offers Oxygis's own commands and a short reviewed list of
Django's; the rest (``createsuperuser``, ``changepassword``, ``shell``, ``dbshell``,
``flush``, ``loaddata``, ``dumpdata``, ``diffsettings``...) would reach data or secrets
around every barrier, and are refused. Everywhere, every run is an event in the
platform's audit log with the operating-system user and host (``Operator``).
"""

from __future__ import annotations

import re

from django.conf import settings
from django.core.management import get_commands
from django.db import DatabaseError, connections

from oxygis.tenancy.context import CATALOG

from .staff import Operator, platform_record

# Reviewed: read-only or schema-only, and needed to deploy.
DJANGO_ALLOWED = frozenset({"migrate", "check", "showmigrations", "help"})

_URL_CREDENTIALS = re.compile(r"(://)[^/@\s]+@")
_SECRET_OPTION = re.compile(r"^(--?[\w-]*(?:password|secret|token|key)[\w-]*=).*$", re.I)


class CommandRefused(Exception):
    """This command is not offered here: one line for the operator."""


def is_offered(name: str) -> bool:
    """Oxygis's own commands (an ``oxygis.*`` app's) and the reviewed Django ones."""
    if not settings.PRODUCTION:
        return True
    if name.startswith("-"):
        return name in ("--help", "-h", "--version")
    app = get_commands().get(name)
    return name in DJANGO_ALLOWED or (app is not None and str(app).startswith("oxygis."))


def redacted(args: list[str]) -> list[str]:
    """Arguments as the log keeps them: no credentials in URLs, no secret options (the
    commands refuse passwords on the command line; this is for whoever tries)."""
    kept = []
    for arg in args[:40]:
        arg = _URL_CREDENTIALS.sub(r"\1[redacted]@", arg)
        arg = _SECRET_OPTION.sub(r"\1[redacted]", arg)
        kept.append(arg[:200])
    return kept


def record_run(name: str, args: list[str], *, refused: bool = False) -> bool:
    """Write the run in the platform's audit log; False when the catalog is not there
    yet (the very first ``migrate`` or ``serve`` of a new machine makes it)."""
    try:
        platform_record(
            "operator.refused" if refused else "operator.command",
            by=Operator.current(),
            target=name[:200],
            args=redacted(args),
        )
    except DatabaseError:
        return False
    finally:
        # Nothing of this stays open into the command: `serve` starts worker processes.
        connections[CATALOG].close()
    return True


def admit(name: str, args: list[str]) -> bool:
    """Refuse a command not offered here (recorded), record one that is. Returns whether
    it was recorded; if not, the caller records it once the command has run."""
    if not is_offered(name):
        record_run(name, args, refused=True)
        raise CommandRefused(
            f"'{name}' is not available in production: it would bypass the platform's "
            "audited paths (see docs/operations.md, 'Production access')"
        )
    return record_run(name, args)
