"""``oxygis pitr setup|backup|status``: thin over backups.pitr (C7, point-in-time recovery)."""

from __future__ import annotations

from oxygis.tenancy.databases import default_server
from oxygis.tenancy.models import DatabaseServer

from ... import pitr
from ...cli import ActionCommand
from ...models import WalArchive


class Command(ActionCommand):
    help = "Continuous WAL archiving of PostgreSQL servers to the backup sites (pgBackRest)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        setup = sub.add_parser(
            "setup", help="archive a server's WAL to every backup site (run on its host)"
        )
        setup.add_argument("--server", metavar="NAME", help="default: the server new tenants go to")
        backup = sub.add_parser("backup", help="base backups due now (the worker runs this)")
        backup.add_argument("--full", action="store_true", help="a full backup, due or not")
        sub.add_parser("status", help="archive lag and restorable window per server")

    def progress(self, text: str) -> None:
        self.stderr.write(text)

    def _server(self, name):
        """The server named, or the one new tenants go to."""
        servers = DatabaseServer.objects.filter(engine=DatabaseServer.POSTGRESQL)
        if name:
            found = servers.filter(name=name).first()
            if found is None:
                raise pitr.PitrError(f"no PostgreSQL database server named {name!r}")
            return found
        server = default_server()
        if server.engine != DatabaseServer.POSTGRESQL:
            raise pitr.PitrError(
                "tenants are on SQLite here: point-in-time recovery needs PostgreSQL"
            )
        return server

    def do_setup(self, server, **_):
        archive, todo = pitr.setup(self._server(server), progress=self.progress)
        if todo:
            raise pitr.PitrError(todo)
        self.stdout.write(
            self.style.SUCCESS(
                f"WAL of server {archive.server.name} is archived to {len(archive.sites)} "
                f"site(s), a segment at least every {archive.archive_timeout} s when written to"
            )
        )

    def do_backup(self, full, **_):
        for line in pitr.run_due_backups(force_full=full):
            self.stdout.write(line)

    def do_status(self, **_):
        archives = list(WalArchive.objects.select_related("server"))
        if not archives:
            self.stdout.write("No server archives its WAL (oxygis pitr setup).")
            return
        for line in pitr.status_lines(archives):
            self.stdout.write(line)
