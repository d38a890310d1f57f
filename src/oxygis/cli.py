"""The ``oxygis`` command: Oxygis's own management commands (``serve``, ``tenant``, ...)
and, in production, only a reviewed few of Django's (platform/operators.py); every run is
in the platform's audit log. Errors are one line on stderr and exit code 2; set
OXYGIS_TRACEBACK=1 to see a traceback instead."""

from __future__ import annotations

import os
import sys


def _fail(message: str) -> None:
    print(f"oxygis: error: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "oxygis.settings")
    debug = os.environ.get("OXYGIS_TRACEBACK", "").lower() in ("1", "true", "yes", "on")
    try:
        import django
        from django.core.management import execute_from_command_line

        django.setup()
        from oxygis.platform.operators import CommandRefused, admit, record_run

        name = argv[1] if len(argv) > 1 else "help"
        args = argv[2:]
        if name != "serve":
            from oxygis.tenancy.hosts import adopt_served_port

            adopt_served_port()
        try:
            recorded = admit(name, args)
        except CommandRefused as exc:
            _fail(str(exc))
        try:
            execute_from_command_line(["oxygis", *argv[1:]])
        finally:
            if not recorded:  # the catalog did not exist before this run made it
                record_run(name, args)
    except KeyboardInterrupt:
        print("oxygis: interrupted", file=sys.stderr)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # the operator gets one line, never a traceback
        if debug:
            raise
        text = str(exc).strip().splitlines()
        _fail(f"{type(exc).__name__}: {text[0] if text else 'unexpected error'}")


if __name__ == "__main__":
    main()
