"""``oxygis logs search``: find requests in the access log (C17) for an incident."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from oxygis.audit.accesslog import log_files
from oxygis.tenancy.commands import write_table

COLUMNS = ("time", "tenant", "user", "ip", "method", "path", "status", "request_id")


def _moment(text: str) -> datetime:
    """An ISO date or date-time (UTC unless it says otherwise), or ``2h``/``3d`` ago."""
    units = {"m": "minutes", "h": "hours", "d": "days"}
    if text[-1:] in units and text[:-1].isdigit():
        return datetime.now(UTC) - timedelta(**{units[text[-1]]: int(text[:-1])})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(
            f"not a time: {text!r} (use 2026-12-06, 2026-12-06T14:30, or 2h, 3d ago)",
            returncode=2,
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = "Search the access log: by tenant, user, IP, route, status and time."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        search = sub.add_parser("search", help="print the matching requests")
        search.add_argument("--tenant", metavar="SLUG")
        search.add_argument("--user", metavar="NAME_OR_ID", help="user name or id")
        search.add_argument("--ip")
        search.add_argument("--route", help="route name (sales:order) or path prefix (/sales/)")
        search.add_argument("--status", help="a code (404) or a class (4xx)")
        search.add_argument("--request-id")
        search.add_argument("--since", type=_moment, help="ISO time, or 2h / 3d ago")
        search.add_argument("--until", type=_moment)
        search.add_argument("--format", choices=("table", "json"), default="table")
        search.add_argument(
            "--file",
            dest="files",
            action="append",
            type=Path,
            help="search these files (JSON lines) instead of OXYGIS_ACCESS_LOG_FILE's",
        )

    def handle(self, *args, files, since, until, format, **criteria):
        if not files:
            if not settings.ACCESS_LOG_FILE:
                raise CommandError(
                    "the access log goes to stdout (OXYGIS_ACCESS_LOG_FILE is not set): "
                    "pass the collected lines with --file",
                    returncode=2,
                )
            first = since.date() if since else None
            last = until.date() if until else None
            files = [
                path
                for day, path in log_files(Path(settings.ACCESS_LOG_FILE))
                if (first is None or day >= first) and (last is None or day <= last)
            ]
        found = list(self._matches(files, since, until, criteria))
        if format == "json":
            for line in found:
                self.stdout.write(json.dumps(line))
            return
        rows = [tuple(c.upper() for c in COLUMNS)]
        rows += [
            tuple(str(line.get(c) if line.get(c) is not None else "-") for c in COLUMNS)
            for line in found
        ]
        write_table(self.stdout, rows)
        self.stderr.write(f"{len(found)} request(s)")

    def _matches(self, files, since, until, criteria):
        for path in files:
            try:
                handle = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115
            except OSError as exc:
                raise CommandError(f"cannot read {path}: {exc.strerror}", returncode=2) from None
            with handle:
                for number, text in enumerate(handle, 1):
                    try:
                        line = json.loads(text)
                    except ValueError:
                        print(f"{path}:{number}: not a JSON line, skipped", file=sys.stderr)
                        continue
                    if isinstance(line, dict) and _wanted(line, since, until, criteria):
                        yield line


def _wanted(line: dict, since, until, criteria) -> bool:
    if since or until:
        try:
            at = datetime.fromisoformat(line.get("time", "").replace("Z", "+00:00"))
        except ValueError:
            return False
        if (since and at < since) or (until and at > until):
            return False
    if criteria["tenant"] and line.get("tenant") != criteria["tenant"]:
        return False
    if criteria["user"] and criteria["user"] not in (line.get("user"), str(line.get("user_id"))):
        return False
    if criteria["ip"] and line.get("ip") != criteria["ip"]:
        return False
    if criteria["request_id"] and line.get("request_id") != criteria["request_id"]:
        return False
    route = criteria["route"]
    if route and line.get("route") != route and not str(line.get("path", "")).startswith(route):
        return False
    status = criteria["status"]
    if status:
        code = str(line.get("status", ""))
        if status.lower().endswith("xx") and code[:1] != status[:1]:
            return False
        if not status.lower().endswith("xx") and code != status:
            return False
    return True
