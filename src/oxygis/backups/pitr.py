"""Point-in-time recovery on PostgreSQL (C7): continuous WAL archiving with pgBackRest.

One pgBackRest *stanza* per PostgreSQL server (a ``WalArchive`` row), with one
repository per backup site (``file://`` -> posix, ``s3://`` -> S3, ``az://`` -> Azure),
in the same order as ``OXYGIS_BACKUP_SITES``. Every repository is encrypted
(aes-256-cbc) with a pass derived from the manifest signing key: a site alone cannot
read it (C2), and a new machine given the sites and the keys can (disaster recovery).

``archive_timeout`` (60 s by default) closes a WAL segment at least once a minute when
there is any write, so that what is lost with the server is at most that (RPO <= 1 min
while the archive keeps up; its lag is watched, ``monitor``). Weekly full and daily
differential base backups go to every repository; pgBackRest expires what falls out of
``OXYGIS_PITR_RETENTION_DAYS``.

A tenant is restored as of a moment by restoring the cluster's base backup and WAL into
a scratch cluster on this machine (only the tenant's database, when the base backup
holds it), which nothing else can reach (a socket in a private folder, no TCP, archiving
off), then dumping the tenant's database from it: the live cluster is never touched.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import pwd
import re
import secrets
import shutil
import subprocess
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import psycopg
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.utils import timezone
from psycopg import sql

from oxygis.tenancy.engines import engine_for
from oxygis.tenancy.models import DatabaseServer

from . import alerts
from .dumps import _alive
from .errors import BackupError
from .keys import configured_keys
from .models import WalArchive
from .sites import one_line

log = logging.getLogger("oxygis.backups")

STANZA = "oxygis"
FULL_EVERY = timedelta(days=7)
BACKUP_EVERY = timedelta(days=1)
SEGMENT = re.compile(r"^[0-9A-F]{24}$")
TARGET_NOT_REACHED = "recovery ended before configured recovery target was reached"
INVALID_PAGES = "WAL contains references to invalid pages"


class PitrError(BackupError):
    pass


# --- the configuration ---------------------------------------------------------------------
def cipher_pass() -> str:
    """The repositories' encryption pass: derived from the manifest signing key, which both
    the platform and a disaster-recovery machine hold, and which no site holds."""
    seed = configured_keys().signing_seed()
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"oxygis pgbackrest cipher v1"
    ).derive(seed)
    return base64.urlsafe_b64encode(derived).decode().rstrip("=")


def _https_endpoint(url: str, endpoint: str) -> tuple[str, int]:
    parts = urlsplit(endpoint)
    if parts.scheme != "https" or not parts.hostname:
        raise PitrError(
            f"backup site {url}: pgBackRest reaches cloud sites over https only "
            f"(endpoint {endpoint!r})"
        )
    return parts.hostname, parts.port or 443


def repository_options(url: str) -> dict[str, str]:
    """pgBackRest options (without the ``repoN-`` prefix) of the repository kept on one
    backup site, in a ``pitr`` folder beside the dumps. Credentials come from the same
    environment variables the sites use (never from the URL)."""
    parts = urlsplit(url)
    options = dict(parse_qsl(parts.query))
    prefix = "/" + "/".join(p for p in (parts.path.strip("/"), "pitr") if p)
    if parts.scheme == "file":
        repo = {"type": "posix", "path": prefix}
    elif parts.scheme == "s3":
        key = os.environ.get("AWS_ACCESS_KEY_ID")
        secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
        if not key or not secret:
            raise PitrError(f"backup site {url}: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY unset")
        region = options.get("region") or os.environ.get("AWS_REGION") or "us-east-1"
        host, port = _https_endpoint(
            url, options.get("endpoint") or f"https://s3.{region}.amazonaws.com"
        )
        repo = {
            "type": "s3",
            "path": prefix,
            "s3-bucket": parts.netloc,
            "s3-region": region,
            "s3-endpoint": host,
            "storage-port": str(port),
            "s3-uri-style": "host"
            if options.get("virtual_hosted_style_request", "").lower() in ("1", "true", "yes")
            else "path",
            "s3-key": key,
            "s3-key-secret": secret,
        }
        if os.environ.get("AWS_SESSION_TOKEN"):
            repo["s3-token"] = os.environ["AWS_SESSION_TOKEN"]
    elif parts.scheme == "az":
        account = options.get("account_name") or os.environ.get("AZURE_STORAGE_ACCOUNT_NAME")
        key = os.environ.get("AZURE_STORAGE_ACCOUNT_KEY")
        if not account or not key:
            raise PitrError(f"backup site {url}: the Azure account or AZURE_STORAGE_ACCOUNT_KEY")
        repo = {
            "type": "azure",
            "path": prefix,
            "azure-account": account,
            "azure-key": key,
            "azure-container": parts.netloc,
        }
        if options.get("endpoint"):
            # An emulator or a private endpoint: the account is in the path.
            host, port = _https_endpoint(url, options["endpoint"])
            repo.update({"azure-endpoint": host, "storage-port": str(port)})
            repo["azure-uri-style"] = "path"
    else:
        raise PitrError(f"backup site {url}: not a file://, s3:// or az:// URL")
    if repo["type"] != "posix" and os.environ.get("SSL_CERT_FILE"):
        repo["storage-ca-file"] = os.environ["SSL_CERT_FILE"]
    repo.update(
        {
            "cipher-type": "aes-256-cbc",
            "cipher-pass": cipher_pass(),
            "retention-full-type": "time",
            "retention-full": str(settings.PITR_RETENTION_DAYS),
            "retention-archive-type": "full",
            # Small files bundled into a few objects: far fewer requests to cloud sites.
            "bundle": "y",
        }
    )
    return repo


def render_config(archive: WalArchive) -> str:
    folder = Path(archive.config_path).parent
    lines = [
        "# Written by `oxygis pitr setup`; holds the repositories' secrets: 0600.",
        "[global]",
        f"log-path={folder / 'log'}",
        f"lock-path={folder / 'lock'}",
        f"spool-path={folder / 'spool'}",
        "log-level-console=warn",
        "log-level-stderr=error",
        "log-level-file=info",
        "compress-type=zst",
        "start-fast=y",
        "archive-timeout=120",
        "io-timeout=30",
        "delta=y",
        "process-max=2",
    ]
    for n, url in enumerate(archive.sites, 1):
        lines += [f"repo{n}-{k}={v}" for k, v in repository_options(url).items()]
    lines += [
        "",
        f"[{STANZA}]",
        f"pg1-path={archive.data_dir}",
        f"pg1-port={archive.port}",
        f"pg1-socket-path={archive.socket_dir}",
        f"pg1-user={archive.superuser}",
    ]
    return "\n".join(lines) + "\n"


def _owner_ids(name: str) -> tuple[int, int]:
    entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


def _private_folder(path: Path, owner: str) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    if os.geteuid() == 0:
        os.chown(path, *_owner_ids(owner))


def write_config(archive: WalArchive) -> None:
    """The stanza's configuration, readable by the cluster's owner only (it holds the
    repositories' keys); written whole and renamed into place."""
    path = Path(archive.config_path)
    for folder in (path.parent, path.parent / "log", path.parent / "lock", path.parent / "spool"):
        _private_folder(folder, archive.os_user)
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(render_config(archive))
    if os.geteuid() == 0:
        os.chown(partial, *_owner_ids(archive.os_user))
    os.replace(partial, path)


# --- running pgBackRest ----------------------------------------------------------------------
def _as_owner(archive: WalArchive, argv: list[str]) -> list[str]:
    """pgBackRest (and PostgreSQL) run as the cluster's owner: from root through runuser."""
    me = pwd.getpwuid(os.geteuid()).pw_name
    if me == archive.os_user:
        return argv
    if os.geteuid() == 0:
        return [shutil.which("runuser") or "/usr/sbin/runuser", "-u", archive.os_user, "--", *argv]
    raise PitrError(
        f"run this as {archive.os_user} (the owner of {archive.data_dir}) or as root, not {me}"
    )


def _pgbackrest() -> str:
    path = shutil.which("pgbackrest")
    if path is None:
        raise PitrError("pgBackRest is not installed (Debian: apt install pgbackrest)")
    return path


def run_pgbackrest(archive: WalArchive, *args: str, timeout: float | None = None) -> str:
    """One pgBackRest command on the archive's stanza; its first error line on failure."""
    argv = _as_owner(
        archive, [_pgbackrest(), f"--config={archive.config_path}", f"--stanza={STANZA}", *args]
    )
    try:
        done = subprocess.run(  # noqa: S603 # nosec B603 # fixed program, no shell
            argv, capture_output=True, text=True, timeout=timeout, cwd="/"
        )
    except subprocess.TimeoutExpired:
        raise PitrError(f"pgbackrest {args[-1]} did not finish in {timeout:.0f} s") from None
    if done.returncode != 0:
        text = [ln for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
        first = next((ln for ln in text if "ERROR" in ln), text[0] if text else "failed")
        raise PitrError(f"pgbackrest {args[-1]}: {first.strip()}")
    return done.stdout


def stanza_info(archive: WalArchive, *extra: str) -> dict:
    stanzas = json.loads(run_pgbackrest(archive, "--output=json", *extra, "info", timeout=120))
    return stanzas[0] if stanzas else {}


def archive_for(server: DatabaseServer) -> WalArchive:
    archive = WalArchive.objects.filter(server=server).first()
    if archive is None or archive.set_up_at is None:
        raise PitrError(
            f"database server {server.name} has no WAL archive: run `oxygis pitr setup "
            f"--server {server.name}` on its host first"
        )
    return archive


# --- setting up -----------------------------------------------------------------------------
def _server_facts(server: DatabaseServer) -> dict:
    with engine_for(server).admin() as conn:
        row = conn.execute(
            "SELECT current_setting('data_directory'), current_setting('server_version_num'),"
            " current_setting('unix_socket_directories'), current_setting('port'),"
            " current_setting('archive_mode'), current_user,"
            " (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)"
        ).fetchone()
    data_dir, version, sockets, port, mode, user, superuser = row
    if not superuser:
        raise PitrError(
            f"the login of database server {server.name} ({user}) is not a superuser: "
            "archiving is set up with ALTER SYSTEM"
        )
    return {
        "data_dir": data_dir,
        "major": str(int(version) // 10000),
        "socket_dir": sockets.split(",")[0].strip() or "/var/run/postgresql",
        "port": int(port),
        "archive_mode": mode,
        "superuser": user,
    }


def archive_command(archive: WalArchive) -> str:
    return f"{_pgbackrest()} --config={archive.config_path} --stanza={STANZA} archive-push %p"


def setup(server: DatabaseServer, *, progress=None) -> tuple[WalArchive, str]:
    """Set up (or bring up to date) continuous archiving of ``server`` to every site.

    Run on the server's host. Idempotent: the first run writes the configuration and turns
    archiving on; if PostgreSQL must restart for it, says so and stops; the next run creates
    the stanza, checks that WAL reaches every repository and takes the first full backup of
    each. Returns the archive and what is left to do ("" when nothing is)."""
    say = progress or (lambda text: None)
    if server.engine != DatabaseServer.POSTGRESQL:
        raise PitrError(f"database server {server.name} is not PostgreSQL")
    if len(settings.BACKUP_SITES) < 1:
        raise PitrError("OXYGIS_BACKUP_SITES lists no site")
    facts = _server_facts(server)
    data_dir = Path(facts["data_dir"])
    if not data_dir.is_dir():
        raise PitrError(
            f"the data directory {data_dir} of server {server.name} is not on this machine: "
            "run `oxygis pitr setup` on the database host"
        )
    archive = WalArchive.objects.filter(server=server).first() or WalArchive(server=server)
    archive.data_dir = str(data_dir)
    archive.os_user = pwd.getpwuid(data_dir.stat().st_uid).pw_name
    archive.pg_version = facts["major"]
    archive.port = facts["port"]
    archive.socket_dir = facts["socket_dir"]
    archive.superuser = facts["superuser"]
    archive.config_path = str(Path(settings.PITR_DIR) / server.name / "pgbackrest.conf")
    archive.sites = list(settings.BACKUP_SITES)
    archive.archive_timeout = settings.PITR_ARCHIVE_TIMEOUT
    write_config(archive)
    archive.save()
    say(f"configuration written to {archive.config_path}")
    with engine_for(server).admin() as conn:
        for name, value in (
            ("archive_mode", "on"),
            ("archive_command", archive_command(archive)),
            ("archive_timeout", str(archive.archive_timeout)),
        ):
            conn.execute(
                sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value))
            )
        conn.execute("SELECT pg_reload_conf()")
    if facts["archive_mode"] != "on":
        return archive, (
            f"archive_mode is now on for server {server.name}: restart PostgreSQL so that it "
            "takes effect, then run `oxygis pitr setup` again"
        )
    time.sleep(0.5)  # the reload reaches the archiver
    say("creating the stanza on every site")
    run_pgbackrest(archive, "stanza-create", timeout=600)
    say("checking that WAL reaches every site")
    run_pgbackrest(archive, "check", timeout=600)
    info = stanza_info(archive)
    have = {b["database"]["repo-key"] for b in info.get("backup", [])}
    for n in range(1, len(archive.sites) + 1):
        if n not in have:
            say(f"first full backup to {archive.sites[n - 1]}")
            run_pgbackrest(archive, f"--repo={n}", "--type=full", "backup")
    now = timezone.now()
    archive.set_up_at = archive.set_up_at or now
    archive.last_full_at = archive.last_full_at or now
    archive.last_backup_at = archive.last_backup_at or now
    archive.save()
    return archive, ""


# --- base backups and health ----------------------------------------------------------------
def run_due_backups(now: datetime | None = None, *, force_full: bool = False) -> list[str]:
    """Weekly full, daily differential base backups of every archive to every site (the
    worker's pass). A site that fails raises an alert; the others still get theirs."""
    now = now or timezone.now()
    done = []
    for archive in WalArchive.objects.filter(set_up_at__isnull=False).select_related("server"):
        if not Path(archive.data_dir).is_dir():
            continue  # the server's own host runs them (`oxygis pitr backup`)
        full = force_full or not archive.last_full_at or now - archive.last_full_at >= FULL_EVERY
        if not full and archive.last_backup_at and now - archive.last_backup_at < BACKUP_EVERY:
            continue
        kind = "full" if full else "diff"
        failed = False
        for n, url in enumerate(archive.sites, 1):
            key = f"pitr-backup:{archive.server.name}:{n}"
            try:
                run_pgbackrest(archive, f"--repo={n}", f"--type={kind}", "backup")
            except PitrError as exc:
                failed = True
                alerts.raise_alert(
                    key, f"base backup of server {archive.server.name} to {url}: {exc}"
                )
                continue
            alerts.resolve_alert(key)
            done.append(f"{archive.server.name} {kind} -> {url}")
        if not failed:
            archive.last_backup_at = now
            if full:
                archive.last_full_at = now
            archive.save(update_fields=["last_backup_at", "last_full_at"])
    return done


@dataclass
class ArchiveHealth:
    server: str
    lag_seconds: float | None  # age of the oldest WAL segment not yet archived (0: none)
    last_archived_at: datetime | None
    last_failed_at: datetime | None
    failed_count: int
    error: str = ""


def archive_health(archive: WalArchive) -> ArchiveHealth:
    try:
        with engine_for(archive.server).admin() as conn:
            row = conn.execute(
                "SELECT (SELECT min(modification) FROM pg_ls_archive_statusdir()"
                "        WHERE name LIKE '%.ready'),"
                " last_archived_time, last_failed_time, failed_count, now()"
                " FROM pg_stat_archiver"
            ).fetchone()
    except Exception as exc:  # the server is down: that is what the alert says
        return ArchiveHealth(archive.server.name, None, None, None, 0, one_line(exc))
    oldest_ready, archived, failed, count, now = row
    lag = (now - oldest_ready).total_seconds() if oldest_ready else 0.0
    return ArchiveHealth(archive.server.name, max(lag, 0.0), archived, failed, count)


def check_archives() -> list[ArchiveHealth]:
    """The monitor's pass: an alert per server whose WAL archive lags more than
    OXYGIS_PITR_LAG_ALERT_MINUTES (or cannot be read), resolved once it keeps up."""
    found = []
    limit = settings.PITR_LAG_ALERT_MINUTES * 60
    for archive in WalArchive.objects.filter(set_up_at__isnull=False).select_related("server"):
        health = archive_health(archive)
        found.append(health)
        key = f"pitr-lag:{archive.server.name}"
        if health.error:
            alerts.raise_alert(
                key, f"WAL archive of server {health.server}: cannot be checked: {health.error}"
            )
        elif health.lag_seconds > limit:
            alerts.raise_alert(
                key,
                f"WAL archive of server {health.server} lags {health.lag_seconds / 60:.0f} min "
                f"(limit {settings.PITR_LAG_ALERT_MINUTES} min): point-in-time recovery "
                "cannot reach past the oldest segment not yet archived",
            )
        else:
            alerts.resolve_alert(key)
        WalArchive.objects.filter(pk=archive.pk).update(
            lag_seconds=None if health.lag_seconds is None else int(health.lag_seconds),
            lag_checked_at=timezone.now(),
        )
    return found


def _stamp(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def window(info: dict) -> tuple[datetime | None, dict[int, datetime]]:
    """The earliest point that can be restored (the first base backup's end), overall
    and per repository."""
    per_repo: dict[int, datetime] = {}
    for backup in info.get("backup", []):
        repo, stop = backup["database"]["repo-key"], _stamp(backup["timestamp"]["stop"])
        if repo not in per_repo or stop < per_repo[repo]:
            per_repo[repo] = stop
    return (min(per_repo.values()) if per_repo else None), per_repo


def status_lines(archives) -> list[str]:
    """Per archived server: lag, last archived segment, restorable window per site."""
    lines = []
    limit = settings.PITR_LAG_ALERT_MINUTES * 60
    for archive in archives:
        health = archive_health(archive)
        if health.error:
            lines.append(f"WAL archive of {archive.server.name}: cannot be checked: {health.error}")
            continue
        state = "LAGGING" if health.lag_seconds > limit else "ok"
        last = (
            f"{(timezone.now() - health.last_archived_at).total_seconds():.0f} s ago"
            if health.last_archived_at
            else "never"
        )
        lines.append(
            f"WAL archive of {archive.server.name}: lag {health.lag_seconds:.0f} s, last "
            f"segment archived {last}, {health.failed_count} failure(s): {state}"
        )
        try:
            _, per_repo = window(stanza_info(archive))
        except PitrError as exc:
            lines.append(f"  cannot read the archive: {exc}")
            continue
        for n, url in enumerate(archive.sites, 1):
            since = per_repo.get(n)
            lines.append(
                f"  {url}: restorable from {since:%Y-%m-%d %H:%M:%S} UTC"
                if since
                else f"  {url}: NO BASE BACKUP"
            )
    return lines


# --- restoring as of a moment ----------------------------------------------------------------
def _bin(archive: WalArchive, tool: str) -> str:
    for folder in (settings.PITR_PG_BIN_DIR, f"/usr/lib/postgresql/{archive.pg_version}/bin"):
        if folder and Path(folder, tool).exists():
            return str(Path(folder, tool))
    raise PitrError(
        f"{tool} of PostgreSQL {archive.pg_version} is not installed on this machine "
        f"(Debian: apt install postgresql-{archive.pg_version}; or set OXYGIS_PITR_PG_BIN_DIR)"
    )


def _set_for(info: dict, repo: int, at: datetime) -> dict | None:
    """The newest base backup of ``repo`` that ended before ``at``."""
    candidates = [
        b
        for b in info.get("backup", [])
        if b["database"]["repo-key"] == repo and _stamp(b["timestamp"]["stop"]) <= at
    ]
    return max(candidates, key=lambda b: b["timestamp"]["stop"], default=None)


class Scratch:
    """A private PostgreSQL cluster for one restore: a socket in a 0700 folder, no TCP
    listener, archiving off (it must never push WAL into the live archive)."""

    def __init__(self, archive: WalArchive):
        self.archive = archive
        self.root = Path(settings.PITR_DIR) / "scratch" / f"{os.getpid()}-{secrets.token_hex(4)}"
        self.data = self.root / "data"
        self.run = self.root / "run"
        self.log = self.root / "postgresql.log"
        self.started = False

    def prepare(self) -> None:
        for folder in (self.root.parent, self.root, self.data, self.run):
            _private_folder(folder, self.archive.os_user)

    def empty(self) -> None:
        shutil.rmtree(self.data, ignore_errors=True)
        _private_folder(self.data, self.archive.os_user)

    def configure(self, *, target: bool) -> None:
        """Our own settings, whatever the backup's files held (a Debian cluster keeps them
        outside the data directory): only the recovery lines of pgBackRest are kept."""
        conf = [
            "port = 5432",
            "listen_addresses = ''",
            f"unix_socket_directories = '{self.run}'",
            "hot_standby = off",  # connections only once promoted
            "archive_mode = off",
            "max_connections = 10",
            "shared_buffers = '32MB'",
            "logging_collector = off",
        ]
        auto = self.data / "postgresql.auto.conf"
        kept = [
            ln
            for ln in (auto.read_text().splitlines() if auto.exists() else [])
            if ln.startswith(("restore_command", "recovery_target"))
            and (target or not ln.startswith("recovery_target"))
        ]
        (self.data / "postgresql.conf").write_text("\n".join(conf) + "\n")
        auto.write_text("\n".join([*kept, "archive_mode = 'off'"]) + "\n")
        (self.data / "pg_hba.conf").write_text(f"local all {self.archive.superuser} trust\n")
        (self.data / "pg_ident.conf").write_text("")
        (self.data / "recovery.signal").touch()
        if os.geteuid() == 0:
            ids = _owner_ids(self.archive.os_user)
            for name in (
                "postgresql.conf",
                "postgresql.auto.conf",
                "pg_hba.conf",
                "pg_ident.conf",
                "recovery.signal",
            ):
                os.chown(self.data / name, *ids)

    def start(self) -> str | None:
        """Start and wait for the end of recovery; the log's verdict if it failed."""
        self.log.unlink(missing_ok=True)
        argv = _as_owner(
            self.archive,
            [_bin(self.archive, "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "start"],
        )
        done = subprocess.run(argv, capture_output=True, text=True, cwd="/")  # noqa: S603 # nosec B603 # fixed program, no shell
        if done.returncode != 0:
            return self._log_text() or done.stderr
        self.started = True
        # With hot_standby off, the first connection that succeeds is after promotion;
        # a postmaster that gave up (target not reached, a segment missing) is gone.
        deadline = time.monotonic() + settings.PITR_RECOVERY_SECONDS
        pid_file = self.data / "postmaster.pid"
        time.sleep(0.2)
        while time.monotonic() < deadline:
            try:
                psycopg.connect(
                    host=str(self.run),
                    port=5432,
                    user=self.archive.superuser,
                    dbname="postgres",
                    connect_timeout=5,
                ).close()
                return None
            except psycopg.OperationalError:
                if not pid_file.exists():
                    self.started = False
                    return self._log_text() or "the scratch cluster stopped"
                time.sleep(0.25)
        return f"recovery did not end within {settings.PITR_RECOVERY_SECONDS} s"

    def _log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.started:
            argv = _as_owner(
                self.archive,
                [_bin(self.archive, "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
            )
            subprocess.run(argv, capture_output=True, cwd="/")  # noqa: S603 # nosec B603 # fixed program, no shell
            self.started = False

    def entry(self, dbname: str) -> dict:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": dbname,
            "HOST": str(self.run),
            "PORT": 5432,
            "USER": self.archive.superuser,
            "PASSWORD": "",  # nosec B105 # no password: the scratch server trusts its own socket only
            "OPTIONS": {},
        }

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _restore_base(archive, scratch, repo: int, base: dict, at: datetime, only: list) -> None:
    """The base backup into the (emptied) scratch folder, to recover up to ``at``."""
    scratch.empty()
    run_pgbackrest(
        archive,
        f"--repo={repo}",
        f"--set={base['label']}",
        f"--pg1-path={scratch.data}",
        "--type=time",
        f"--target={at.astimezone(UTC):%Y-%m-%d %H:%M:%S.%f}+00",
        "--target-action=promote",
        "--archive-mode=off",
        *only,
        "restore",
    )
    scratch.configure(target=True)


def _databases_in(archive: WalArchive, repo: int, label: str) -> set[str]:
    detail = stanza_info(archive, f"--repo={repo}", f"--set={label}")
    return {d["name"] for b in detail.get("backup", []) for d in b.get("database-ref", [])}


def _restored_segments(log_text: str) -> list[str]:
    return re.findall(r'restored log file "([0-9A-F]{24})" from archive', log_text)


@dataclass
class PointInTime:
    """What a scratch restore reached: its database entry, the site it came from, and the
    point actually reached (``at``, or the end of the archive when nothing was written
    between them)."""

    entry: dict
    site: str
    reached: datetime
    how: str  # its database only, or the whole cluster (and why)
    note: str = ""


def _check_window(archive: WalArchive, info: dict, at: datetime) -> None:
    now = timezone.now()
    earliest, _ = window(info)
    if earliest is None:
        raise PitrError(f"the WAL archive of server {archive.server.name} holds no base backup")
    if at < earliest:
        raise PitrError(
            f"{at:%Y-%m-%d %H:%M:%S} UTC is before the WAL archive of server "
            f"{archive.server.name} begins: the earliest point that can be restored is "
            f"{earliest:%Y-%m-%d %H:%M:%S} UTC"
        )
    if at > now:
        raise PitrError(f"{at:%Y-%m-%d %H:%M:%S} UTC is in the future")


@contextmanager
def restored_as_of(archive: WalArchive, dbname: str, at: datetime, *, progress=None):
    """A scratch cluster holding ``dbname`` as of ``at``; yields a PointInTime. Each site
    is tried in turn; a site whose archive has a gap before ``at`` is passed over, and if
    every site has one the restore is refused, saying which segment is missing."""
    say = progress or (lambda text: None)
    info = stanza_info(archive)
    _check_window(archive, info, at)
    archive_max = {a["database"]["repo-key"]: a.get("max") for a in info.get("archive", [])}
    scratch = Scratch(archive)
    problems = []
    try:
        scratch.prepare()
        for n, url in enumerate(archive.sites, 1):
            base = _set_for(info, n, at)
            if base is None:
                problems.append(f"{url}: no base backup before that point")
                continue
            names = _databases_in(archive, n, base["label"])
            # Only the tenant's database when the base backup holds it (the others come
            # back as empty files); a database created since needs the whole cluster.
            # Replaying WAL onto those empty files can stop with "invalid pages" (a page
            # the WAL changes without a full image of it): then the whole cluster it is.
            attempts = [[f"--db-include={dbname}"], []] if dbname in names else [[]]
            restore_error = None
            for only in attempts:
                say(
                    f"restoring base backup {base['label']} from {url}"
                    + (" (its database only)" if only else "")
                )
                try:
                    _restore_base(archive, scratch, n, base, at, only)
                except PitrError as exc:
                    restore_error = str(exc)
                    break
                say(f"replaying WAL up to {at:%Y-%m-%d %H:%M:%S} UTC")
                failure = scratch.start()
                if not (only and failure and INVALID_PAGES in failure):
                    break
                say("the partial restore could not replay: restoring the whole cluster")
            if restore_error is not None:
                problems.append(f"{url}: {restore_error}")
                continue
            reached, note = at, ""
            if failure is not None:
                if TARGET_NOT_REACHED not in failure:
                    problems.append(f"{url}: the scratch cluster failed: {_last_log(failure)}")
                    continue
                segments = _restored_segments(failure)
                last = segments[-1] if segments else base["archive"]["stop"]
                if archive_max.get(n) and last < archive_max[n]:
                    problems.append(
                        f"{url}: archive gap: the WAL segment after {last} is missing "
                        f"(the archive goes on to {archive_max[n]})"
                    )
                    continue
                # The archive ends before the point asked for: nothing was committed
                # between its end and then, unless that WAL is not archived yet.
                if timezone.now() - at < timedelta(
                    seconds=archive.archive_timeout + settings.PITR_LAG_ALERT_MINUTES * 60
                ):
                    raise PitrError(
                        f"the WAL archive of server {archive.server.name} does not reach "
                        f"{at:%Y-%m-%d %H:%M:%S} UTC yet (it ends at segment {last}): choose an "
                        f"earlier point or wait {archive.archive_timeout} s"
                    )
                scratch.configure(target=False)
                failure = scratch.start()
                if failure is not None:
                    problems.append(f"{url}: the scratch cluster failed: {_last_log(failure)}")
                    continue
                note = "nothing was committed between the end of the archive and that point"
            how = (
                f"base backup {base['label']}, "
                + ("its database only" if only else "the whole cluster")
                + (
                    " (its database alone could not replay)"
                    if len(attempts) > 1 and not only
                    else ""
                )
            )
            yield PointInTime(scratch.entry(dbname), url, reached, how, note)
            return
        raise PitrError(
            f"no site could restore server {archive.server.name} as of "
            f"{at:%Y-%m-%d %H:%M:%S} UTC: " + "; ".join(problems)
        )
    finally:
        scratch.remove()


def _last_log(text: str) -> str:
    lines = [ln for ln in text.splitlines() if "FATAL" in ln or "ERROR" in ln]
    return (lines[-1] if lines else (text.strip().splitlines() or ["no log"])[-1]).strip()[-300:]


def parse_point(text: str) -> datetime:
    """``2026-11-27 14:32``: UTC unless an offset (``+01:00``) is given."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise PitrError(
            f"--at {text!r}: give a date and time such as 2026-11-27 14:32 (UTC unless an "
            "offset such as +01:00 is given)"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def sweep_scratch() -> int:
    """Scratch clusters of processes that died (kill -9 mid-restore): stopped, removed."""
    root = Path(settings.PITR_DIR) / "scratch"
    removed = 0
    for folder in root.glob("*-*") if root.is_dir() else []:
        owner = folder.name.split("-")[0]
        if not owner.isdigit() or _alive(int(owner)):
            continue
        postmaster = folder / "data" / "postmaster.pid"
        if postmaster.exists():
            with suppress(ValueError, ProcessLookupError, PermissionError, IndexError):
                os.kill(int(postmaster.read_text().split()[0]), 9)
        if _remove_when_quiet(folder):
            removed += 1
    return removed


def _remove_when_quiet(folder: Path, seconds: float = 10) -> bool:
    """Remove the folder of a cluster whose postmaster was just killed. Its children
    notice and exit within moments, but until then they may still write a file, and a
    single rmtree then leaves the folder behind: try again until it is gone."""
    deadline = time.monotonic() + seconds
    while True:
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            return True
        if time.monotonic() > deadline:
            log.warning("scratch cluster folder %s could not be removed yet", folder)
            return False
        time.sleep(0.1)
