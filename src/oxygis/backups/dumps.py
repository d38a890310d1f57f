"""Consistent dumps and restores of one database, per engine.

PostgreSQL: ``pg_dump --format=custom`` run on a snapshot exported by a REPEATABLE READ
transaction in which the rows are also counted, so that the manifest's counts describe
exactly the dumped data; restored with ``pg_restore`` reading a pipe. SQLite: the online
backup API into a scratch file. Passwords reach the client tools only through their
environment, never their command line.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from django.conf import settings
from psycopg import sql
from psycopg.conninfo import make_conninfo

from oxygis.tenancy.dburl import is_postgresql
from oxygis.tenancy.engines.postgresql import BACKUP_APPLICATION
from oxygis.tenancy.engines.sqlite import online_copy

from .errors import BackupError

_PG_TABLES = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY c.relname
"""
_SQLITE_TABLES = (
    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
)


@dataclass(frozen=True)
class DatabaseRef:
    """Where one database is, and how to reach it (from a Django DATABASES entry)."""

    engine: str  # "sqlite" | "postgresql"
    name: str  # PostgreSQL: database name; SQLite: file path
    params: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_entry(cls, entry: dict) -> DatabaseRef:
        if entry["ENGINE"] == "django.db.backends.sqlite3":
            return cls("sqlite", str(entry["NAME"]))
        if is_postgresql(entry):
            params = {
                "host": entry.get("HOST") or "",
                "port": str(entry.get("PORT") or ""),
                "user": entry.get("USER") or "",
                "password": entry.get("PASSWORD") or "",
                **{k: v for k, v in (entry.get("OPTIONS") or {}).items() if isinstance(v, str)},
            }
            return cls("postgresql", entry["NAME"], {k: v for k, v in params.items() if v})
        raise BackupError(f"cannot back up a {entry['ENGINE']} database")

    def with_name(self, name: str) -> DatabaseRef:
        return DatabaseRef(self.engine, name, self.params)

    # --- PostgreSQL helpers -----------------------------------------------------------
    def connect(self, **kwargs):
        try:
            return psycopg.connect(
                dbname=self.name,
                connect_timeout=10,
                application_name=BACKUP_APPLICATION,
                **self.params,
                **kwargs,
            )
        except psycopg.OperationalError as exc:
            raise BackupError(f"cannot open database {self.name}: {_last_line(exc)}") from None

    def client_args(self) -> tuple[str, dict]:
        """A conninfo without the password (safe on a command line), and the environment
        that carries the password to libpq."""
        params = {k: v for k, v in self.params.items() if k != "password"}
        env = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
        if "password" in self.params:
            env["PGPASSWORD"] = self.params["password"]
        return make_conninfo(dbname=self.name, application_name=BACKUP_APPLICATION, **params), env


def _tool(name: str) -> str:
    """The absolute path of a PostgreSQL client tool (never looked up by a shell)."""
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"{name} is not installed (Debian: apt install postgresql-client)")
    return path


def _tool_failed(tool: str, errors) -> BackupError:
    """The error of a client tool that exited non-zero: the last line it wrote."""
    errors.seek(0)
    return BackupError(f"{tool} failed: {_last_line(errors.read().decode(errors='replace'))}")


def _last_line(exc_or_text) -> str:
    lines = [line for line in str(exc_or_text).strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "unknown error"


_HOST = socket.gethostname()


def _scratch_path(suffix: str) -> Path:
    """A scratch file named for this host and process, so that what a killed process
    left can be told from what a live one is writing (``scratch_files_of_the_dead``)."""
    folder = Path(settings.BACKUP_SCRATCH_DIR)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder / f"{_HOST}~{os.getpid()}~{uuid.uuid4().hex}{suffix}"


def scratch_files_of_the_dead() -> list[Path]:
    """Scratch files of this host whose process is gone (or that carry no owner)."""
    folder = Path(settings.BACKUP_SCRATCH_DIR)
    if not folder.is_dir():
        return []
    dead = []
    for path in folder.iterdir():
        host, _, rest = path.name.partition("~")
        pid = rest.partition("~")[0]
        if not rest:
            dead.append(path)  # named before owners were recorded
        elif host == _HOST and pid.isdigit() and not _alive(int(pid)):
            dead.append(path)
    return dead


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Snapshot:
    """What the manifest says of the data: rows per table, applied migrations, and the
    next order number (so that a restore never gives out a number twice)."""

    row_counts: dict[str, int]
    migrations: list[str]
    order_next_number: int | None = None


def _snapshot(execute, tables_query: str, count_query) -> Snapshot:
    """Rows per table and applied migrations, through ``execute`` (a cursor's or an
    sqlite3 connection's), in whatever transaction it is in."""
    counts = {
        table: execute(count_query(table)).fetchone()[0]
        for (table,) in execute(tables_query).fetchall()
    }
    migrations = []
    if "django_migrations" in counts:
        rows = execute("SELECT app, name FROM django_migrations ORDER BY app, name").fetchall()
        migrations = [f"{app}.{name}" for app, name in rows]
    next_number = None
    if counts.get("sales_ordersequence"):
        next_number = execute("SELECT max(next_number) FROM sales_ordersequence").fetchone()[0]
    return Snapshot(counts, migrations, next_number)


def _pg_snapshot(cursor) -> Snapshot:
    return _snapshot(
        cursor.execute,
        _PG_TABLES,
        lambda table: sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)),
    )


def _sqlite_snapshot(conn) -> Snapshot:
    # Table names come from sqlite_master itself, quoted as identifiers.
    return _snapshot(
        conn.execute,
        _SQLITE_TABLES,
        lambda table: 'SELECT count(*) FROM "{}"'.format(table.replace('"', '""')),  # noqa: S608 # nosec B608 # a table name from sqlite_master, quoted as an identifier
    )


class Dump:
    """An open dump: ``stream`` to read, ``snapshot`` of what it holds."""

    def __init__(self, stream, snapshot: Snapshot):
        self.stream = stream
        self.snapshot = snapshot


@contextmanager
def open_dump(ref: DatabaseRef) -> Iterator[Dump]:
    """A consistent dump of ``ref``; raises BackupError if the dump tool fails."""
    if ref.engine == "postgresql":
        yield from _pg_dump(ref)
    else:
        yield from _sqlite_dump(ref)


def _pg_dump(ref: DatabaseRef):
    conn = ref.connect()
    try:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.cursor() as cursor:
            snapshot_id = cursor.execute("SELECT pg_export_snapshot()").fetchone()[0]
            snapshot = _pg_snapshot(cursor)
        conninfo, env = ref.client_args()
        with tempfile.TemporaryFile() as errors:
            # Uncompressed custom format: zstd compresses better and faster, after.
            proc = subprocess.Popen(  # noqa: S603 # nosec B603 # fixed program, no shell
                [
                    _tool("pg_dump"),
                    "--format=custom",
                    "--compress=0",
                    f"--snapshot={snapshot_id}",
                    "--dbname",
                    conninfo,
                ],
                stdout=subprocess.PIPE,
                stderr=errors,
                env=env,
            )
            try:
                yield Dump(proc.stdout, snapshot)
                # Read to the end even if the consumer stopped early, then judge pg_dump.
                while proc.stdout.read(1 << 20):
                    pass
                code = proc.wait()
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            finally:
                proc.stdout.close()
            if code != 0:
                raise _tool_failed("pg_dump", errors)
    finally:
        conn.close()


def _sqlite_dump(ref: DatabaseRef):
    if not Path(ref.name).exists():
        raise BackupError(f"database file {ref.name} does not exist")
    copy = _scratch_path(".sqlite3")
    try:
        online_copy(Path(ref.name), copy)
        conn = sqlite3.connect(copy)
        try:
            snapshot = _sqlite_snapshot(conn)
        finally:
            conn.close()
        with open(copy, "rb") as stream:
            yield Dump(stream, snapshot)
    finally:
        copy.unlink(missing_ok=True)


# --- restore -----------------------------------------------------------------------
@contextmanager
def restore_sink(ref: DatabaseRef):
    """A writable stream that restores a dump into ``ref`` (an empty database, or for
    SQLite a path that must not exist yet). The file appears only once complete."""
    if ref.engine == "postgresql":
        conninfo, env = ref.client_args()
        with tempfile.TemporaryFile() as errors:
            proc = subprocess.Popen(  # noqa: S603 # nosec B603 # fixed program, no shell
                [
                    _tool("pg_restore"),
                    "--no-owner",
                    "--no-privileges",
                    "--exit-on-error",
                    "--single-transaction",
                    "--dbname",
                    conninfo,
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                env=env,
            )
            try:
                yield proc.stdin
                proc.stdin.close()
                code = proc.wait()
            except BaseException:
                # If pg_restore stopped on its own (a broken pipe is then only the echo),
                # its own error is the one to report, not a fault of the backup's copy.
                died = proc.poll()
                proc.kill()
                proc.wait()
                if not died:
                    raise
                code = died
            if code != 0:
                raise _tool_failed("pg_restore", errors)
        return
    target = Path(ref.name)
    if target.exists():
        raise BackupError(f"refusing to overwrite {target}")
    partial = target.with_name(target.name + ".partial")
    fd = os.open(partial, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield _LocalSink(handle, target)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


class _LocalSink:
    """The restored SQLite file; a write error (disk full) is the target's, not the copy's."""

    def __init__(self, handle, target: Path):
        self.handle, self.target = handle, target

    def write(self, data) -> int:
        try:
            return self.handle.write(data)
        except OSError as exc:
            raise BackupError(f"cannot write {self.target}: {exc.strerror}") from None

    def flush(self) -> None:
        self.handle.flush()


def inspect(ref: DatabaseRef) -> Snapshot:
    """Rows per table and migrations of a database, after an integrity check."""
    if ref.engine == "postgresql":
        with ref.connect(autocommit=True) as conn, conn.cursor() as cursor:
            return _pg_snapshot(cursor)
    conn = sqlite3.connect(f"file:{ref.name}?mode=ro", uri=True)
    try:
        result = conn.execute("PRAGMA integrity_check").fetchone()[0]
        if result != "ok":
            raise BackupError(f"restored database fails its integrity check: {result}")
        return _sqlite_snapshot(conn)
    finally:
        conn.close()
