"""``oxygis security check|scan|advisories|report``: the self-check and the disclosure inbox.

``check`` exits 0 when clean, 1 with one line per finding, 2 when it cannot run at all.
``report`` reads one e-mail (RFC 5322, on standard input, as an MTA pipes it) sent to the
address in security.txt and files it as an urgent security ticket.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from oxygis.security import advisories
from oxygis.security.selfcheck import CHECKS, run_check
from oxygis.tenancy.context import CATALOG, using_database


class Command(BaseCommand):
    help = "Security self-check, scans, the advisory database and e-mailed reports (S10, S11)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        check = sub.add_parser("check", help="check this deployment (and a live address)")
        check.add_argument("--url", help="a live address: grade its headers, check its TLS")
        check.add_argument(
            "--connect", metavar="ADDRESS", help="connect there instead of resolving the name"
        )
        check.add_argument("--cafile", help="trust this CA bundle for --url")
        check.add_argument(
            "--only", action="append", choices=CHECKS, help="run only this check (repeatable)"
        )
        check.add_argument(
            "--lock", action="append", type=Path, help="audit this hashed lock file (repeatable)"
        )
        check.add_argument("--json", action="store_true", help="one JSON document")
        sub.add_parser("scan", help="run the daily scan of every kind of host now")
        db = sub.add_parser("advisories", help="the cached vulnerability database")
        db_sub = db.add_subparsers(dest="step", required=True, metavar="STEP")
        db_sub.add_parser("status", help="what is cached, from where, how old")
        update = db_sub.add_parser("update", help="download OSV's PyPI export")
        update.add_argument("--from-url", dest="url", help="another address for the export")
        imported = db_sub.add_parser("import", help="use an OSV export carried in by hand")
        imported.add_argument("file", type=Path)
        imported.add_argument("--as-of", help="the date the export was made (YYYY-MM-DD)")
        sub.add_parser("report", help="file the e-mail on standard input as a security report")

    def handle(self, *args, action, **options):
        try:
            return getattr(self, f"do_{action}")(**options)
        except advisories.AdvisoryError as exc:
            raise CommandError(str(exc), returncode=2) from None

    def do_check(self, url, connect, cafile, only, lock, json: bool, **_):
        if (connect or cafile) and not url:
            raise CommandError("--connect and --cafile go with --url", returncode=2)
        only = tuple(only or CHECKS)
        if not url and set(only) <= {"headers", "tls"}:
            raise CommandError("the headers and tls checks need --url", returncode=2)
        missing = [str(p) for p in lock or [] if not p.exists()]
        if missing:
            raise CommandError(f"no such lock file: {', '.join(missing)}", returncode=2)
        try:
            report = run_check(url, connect=connect, only=only, locks=lock, cafile=cafile)
        except ValueError as exc:
            raise CommandError(str(exc), returncode=2) from None
        if json:
            self.stdout.write(_json(report.as_json()))
        else:
            if report.headers:
                h = report.headers
                self.stdout.write(f"headers: {h['grade']} ({h['score']}/100) for {url}")
            if report.dependencies:
                d = report.dependencies
                self.stdout.write(
                    f"dependencies: {d['packages']} packages ({d['audited']}) audited "
                    f"against {d['source']}"
                )
            for finding in report.findings:
                self.stdout.write(finding.line())
            self.stdout.write("no findings" if report.ok else f"{len(report.findings)} finding(s)")
        if not report.ok:
            sys.exit(1)

    def do_scan(self, **_):
        from oxygis.platform.staff import Operator
        from oxygis.security.scans import run_scan

        def progress(text: str) -> None:  # the hosts as they come, not every handshake
            if text.startswith("security scan: "):
                self.stderr.write(f"scanning {text.removeprefix('security scan: ')} ...")

        with using_database(CATALOG):
            run = run_scan(requested_by=Operator.current().get_username(), progress=progress)
            for result in run.results.all():
                where = result.url or "server"
                grade = f" {result.grade}" if result.grade else ""
                self.stdout.write(
                    f"{result.kind}{grade} {where}: {len(result.findings)} finding(s)"
                )
                for finding in result.findings:
                    self.stdout.write(f"  {finding['check']}: {finding['message']}")
        if run.findings:
            sys.exit(1)

    def do_advisories(self, step, url=None, file=None, as_of=None, **_):
        if step == "status":
            status = advisories.status()
            if status is None:
                self.stdout.write("no cached advisory database")
                sys.exit(1)
            self.stdout.write(_json(status))
        elif step == "update":
            status = advisories.update(url)
            self.stdout.write(f"{status['records']} advisories from {status['source']}")
        else:
            try:
                status = advisories.import_file(file, as_of=as_of)
            except ValueError:
                raise CommandError("--as-of must be a date: YYYY-MM-DD", returncode=2) from None
            self.stdout.write(f"{status['records']} advisories imported from {file}")

    def do_report(self, **_):
        from oxygis.platform.disclosure import DisclosureError, file_emailed_report

        raw = sys.stdin.buffer.read(2 * 1024 * 1024 + 1)
        if len(raw) > 2 * 1024 * 1024:
            raise CommandError("a report e-mail holds at most 2 MiB", returncode=2)
        with using_database(CATALOG):
            try:
                ticket = file_emailed_report(raw)
            except DisclosureError as exc:
                raise CommandError(str(exc), returncode=2) from None
        self.stdout.write(f"security report filed as ticket #{ticket.pk}")


def _json(document) -> str:
    return json.dumps(document, indent=1, default=str)
