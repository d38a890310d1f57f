"""``oxygis serve``: set up what is missing, then serve HTTPS (web/server.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from oxygis import config
from oxygis.backups.keys import ensure_embedded_keys
from oxygis.platform.demo import ensure_demo_tenant
from oxygis.tenancy.context import CATALOG, using_database
from oxygis.tenancy.databases import default_server
from oxygis.tenancy.hosts import forget_served_port, note_served_port, site_url, tenant_host
from oxygis.tenancy.pool import BudgetTooLarge, check_budget, close_idle_connections
from oxygis.web import server
from oxygis.web.staticfiles import ensure_collected
from oxygis.web.tls import ensure_local_tls


class Command(BaseCommand):
    help = "Serve Oxygis over HTTPS (embedded mode: creates var/, a local CA and a demo tenant)."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8443, help="HTTPS port (default 8443)")
        parser.add_argument(
            "--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=int(os.environ.get("OXYGIS_WORKERS", "2")),
            help="web server processes (default 2, or OXYGIS_WORKERS)",
        )
        parser.add_argument("--no-demo", action="store_true", help="do not create the demo tenant")
        parser.add_argument(
            "--no-worker",
            action="store_true",
            help="do not run the backup worker here (run `oxygis worker` elsewhere)",
        )

    def handle(self, *args, port, bind, workers, no_demo, no_worker, **options):
        if not 1 <= port <= 65535:
            raise CommandError(f"invalid port {port}", returncode=2)
        if workers < 1:
            raise CommandError("--workers must be at least 1", returncode=2)
        if config.env_str("PUBLIC_PORT") is None:
            # Links in e-mails name the port we serve on (and so does the worker we start).
            settings.PUBLIC_PORT = port
            os.environ["OXYGIS_PUBLIC_PORT"] = str(port)
        certfile, keyfile, tls_folder, default_names = self._tls()
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
        note_served_port(port)
        with using_database(CATALOG):
            call_command("migrate", database=CATALOG, interactive=False, verbosity=0)
        with using_database(CATALOG):
            default_server()  # and the pooler it names now (OXYGIS_DATABASE_POOLER)
        made = None if no_demo else ensure_demo_tenant()
        try:
            check_budget(workers)
        except BudgetTooLarge as exc:
            raise CommandError(str(exc), returncode=2) from None
        if not settings.PRODUCTION:
            ensure_embedded_keys()
        ensure_collected()

        out = self.stdout.write
        out("")
        out(self.style.SUCCESS("Oxygis is starting"))
        out(f"  demo workspace:    {site_url('demo')}")
        out(f"  platform console:  {site_url(None)} (staff: `oxygis staff create`)")
        if not settings.PRODUCTION:
            out(f"  data folder:       {settings.VAR_DIR}")
            out(f"  CA certificate:    {Path(settings.VAR_DIR) / 'tls' / 'ca.pem'}")
            out("                     (trust it in your browser, or: curl --cacert <it> ...)")
            if settings.EMAIL_BACKEND == "oxygis.core.mail.EmlFileBackend":
                out(f"  e-mail:            written as .eml files to {settings.EMAIL_FILE_PATH}")
            out(f"  backups:           {len(settings.BACKUP_SITES)} sites, daily, by the worker")
            for site in settings.BACKUP_SITES:
                out(f"                     {site}")
            identity = Path(settings.BACKUP_KEYS_DIR) / "backup-identity.txt"
            if identity.exists():
                out(f"  backup private key: {identity}")
                out("                     (in production it must live offline, not here)")
        if made is not None:
            out(
                self.style.WARNING("  demo administrator (shown this once, stored only as a hash):")
            )
            out(f"    username: {made.admin_username}")
            out(f"    password: {made.admin_password}")
        out("  Press Ctrl-C to stop.")
        out("")
        self.stdout.flush()
        binds = [f"[{bind}]:{port}" if ":" in bind else f"{bind}:{port}"]
        # The backup worker runs beside the web server, as its own (supervised) process.
        worker = None
        if not no_worker:
            # Supervised: restarted if it dies or hangs (backups/supervisor.py).
            worker = subprocess.Popen([sys.executable, "-m", "oxygis.cli", "worker", "--supervise"])  # nosec B603 # our own program, no shell
        # The server's processes are spawned, not forked, and open their own database
        # sessions; ours are of no use to them.
        connections.close_all()
        close_idle_connections()  # pooled ones too: this process serves nothing itself
        try:
            code = server.run(
                binds=binds,
                workers=workers,
                certfile=certfile,
                keyfile=keyfile,
                tls_folder=tls_folder,
                default_names=default_names,
            )
        finally:
            forget_served_port()
            if worker is not None:
                worker.terminate()
                try:
                    worker.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    worker.kill()
        if code:
            raise CommandError(f"the web server stopped with exit code {code}", returncode=2)

    def _tls(self):
        """(certificate, key, folder of per-host certificates, names of the default one)."""
        cert = os.environ.get("OXYGIS_TLS_CERT_FILE")
        key = os.environ.get("OXYGIS_TLS_KEY_FILE")
        if bool(cert) != bool(key):
            raise CommandError(
                "set both OXYGIS_TLS_CERT_FILE and OXYGIS_TLS_KEY_FILE", returncode=2
            )
        if cert:
            for path in (cert, key):
                if not Path(path).is_file():
                    raise CommandError(f"TLS file not found: {path}", returncode=2)
            return cert, key, None, ()
        if settings.PRODUCTION:
            if settings.TRUSTED_PROXIES:
                return None, None, None, ()  # TLS ends at the trusted proxy in front of us
            raise CommandError(
                "production needs TLS: set OXYGIS_TLS_CERT_FILE/KEY_FILE, or "
                "OXYGIS_TRUSTED_PROXIES for the TLS proxy in front of this server",
                returncode=2,
            )
        folder = Path(settings.VAR_DIR) / "tls"
        names = [settings.DOMAIN, tenant_host("demo"), f"console.{settings.DOMAIN}"]
        tls = ensure_local_tls(folder, names)
        return str(tls.cert), str(tls.key), folder, names
