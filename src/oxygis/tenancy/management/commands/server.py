"""``oxygis server add|list|close|open``: the database servers tenants live on (thin over
tenancy/servers.py). New tenants go to the open server holding the fewest."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count

from oxygis.config import parse_pooler_address
from oxygis.tenancy import servers
from oxygis.tenancy.commands import write_table
from oxygis.tenancy.models import DatabaseServer
from oxygis.tenancy.tenants import TenantError


class Command(BaseCommand):
    help = "Register database servers, list them, close or open them to new tenants."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        add = sub.add_parser("add", help="register a PostgreSQL server (or a cluster)")
        add.add_argument("name", help="a short name, e.g. db2")
        add.add_argument(
            "--url",
            required=True,
            help="postgresql://user@host:port/dbname (several hosts for a cluster); "
            "the password from PGPASSWORD or ~/.pgpass, never here",
        )
        add.add_argument("--region", default="local", help="where it is (data location)")
        add.add_argument(
            "--pooler",
            help="host:port of a PgBouncer in front of it, or /socket/folder:port on this host",
        )
        sub.add_parser("list", help="list the servers and how many tenants each holds")
        for action, text in (("close", "take no new tenants"), ("open", "take new tenants")):
            sub.add_parser(action, help=f"the server will {text}").add_argument("name")

    def handle(self, *args, action, **options):
        try:
            getattr(self, f"do_{action}")(**options)
        except (TenantError, ImproperlyConfigured) as exc:
            raise CommandError(str(exc), returncode=2) from None

    def do_add(self, name, url, region, pooler, **_):
        server = servers.register_server(
            name,
            servers.entry_from_url(url, "--url"),
            region=region,
            pooler=parse_pooler_address(pooler, "--pooler") if pooler else None,
        )
        self.stdout.write(f"Database server {name} ({server.address}) takes new tenants.")

    def do_list(self, **_):
        rows = [("NAME", "ENGINE", "MEMBERS", "REGION", "TENANTS", "NEW TENANTS", "POOLER")]
        for s in DatabaseServer.objects.annotate(held=Count("tenants")).order_by("name"):
            members = s.path if s.engine == s.SQLITE else s.address
            rows.append(
                (
                    s.name,
                    s.engine,
                    members,
                    s.region,
                    str(s.held),
                    "yes" if s.accepts_new_tenants else "no",
                    f"{s.pooler_host}:{s.pooler_port}" if s.pooler_host else "-",
                )
            )
        write_table(self.stdout, rows)
        if len(rows) == 1:
            self.stdout.write("(no database server yet: the first tenant registers one)")

    def do_close(self, name, **_):
        servers.set_accepting(name, False)
        self.stdout.write(f"Database server {name} takes no new tenants (its own stay).")

    def do_open(self, name, **_):
        servers.set_accepting(name, True)
        self.stdout.write(f"Database server {name} takes new tenants.")
