"""SQLite: one file per tenant in the server's folder, copied from a migrated template."""

from __future__ import annotations

import fcntl
import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

from . import Engine, EngineError

SQLITE_OPTIONS = {
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
}


def online_copy(source: Path, target: Path) -> None:
    """Copy a database file with SQLite's online backup API: consistent even while it is
    written to (WAL mode included). The copy is private to this user (0600)."""
    fd = os.open(target, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    os.close(fd)
    source_conn = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        target_conn = sqlite3.connect(target)
        try:
            source_conn.backup(target_conn)
        finally:
            target_conn.close()
    finally:
        source_conn.close()


class SQLiteEngine(Engine):
    @property
    def folder(self) -> Path:
        # Relative to the data folder (a catalog restored on another machine then finds
        # its tenants there); absolute paths of older catalogs still work.
        folder = Path(settings.VAR_DIR) / self.server.path
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return folder

    def _path(self, name: str) -> Path:
        return self.folder / f"{name}.sqlite3"

    def _entry(self, path: Path) -> dict:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(path),
            "OPTIONS": SQLITE_OPTIONS,
        }

    def tenant_entry(self, tenant) -> dict:
        return self._entry(self._path(tenant.db_name))

    def template_entry(self) -> dict:
        return self._entry(self._path("_template"))

    def create_template_storage(self) -> None:
        self._path("_template").touch(mode=0o600, exist_ok=True)

    @contextmanager
    def template_lock(self):
        with open(self.folder / ".template.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def create_database(self, tenant) -> str:
        target = self._path(tenant.db_name)
        if target.exists():
            raise EngineError(f"database file for tenant {tenant.slug} already exists")
        partial = target.with_suffix(".partial")
        # The copy lands under a temporary name and is renamed only once complete.
        online_copy(self._path("_template"), partial)
        os.replace(partial, target)
        return ""

    def drop_database(self, tenant) -> None:
        self.drop_named_database(tenant.db_name)
        self._path(tenant.db_name).with_suffix(".partial").unlink(missing_ok=True)
        # Files kept by a live restore (``<db>_p...``) or left by one that failed.
        for path in self.folder.glob(f"{tenant.db_name}_*.sqlite3*"):
            path.unlink(missing_ok=True)

    def database_exists(self, tenant) -> bool:
        return self._path(tenant.db_name).exists()

    # --- restores ---------------------------------------------------------------------
    def create_tenant_storage(self, tenant) -> str:
        return ""  # the restore writes the file

    def entry_named(self, tenant, name: str | None) -> dict:
        if tenant is not None and name is None:
            return self.tenant_entry(tenant)
        return self._entry(self._path(name))

    def create_named_database(self, name: str, owner_tenant=None) -> None:
        pass  # the restore writes the file

    def drop_named_database(self, name: str) -> None:
        base = self._path(name)
        for path in (base, Path(f"{base}-wal"), Path(f"{base}-shm"), Path(f"{base}.partial")):
            path.unlink(missing_ok=True)

    def prune_audit(self, entry: dict, before_seq: int) -> int:
        conn = sqlite3.connect(entry["NAME"], timeout=SQLITE_OPTIONS["timeout"])
        try:
            with conn:
                return conn.execute(
                    "DELETE FROM audit_auditevent WHERE seq < ?", [before_seq]
                ).rowcount
        finally:
            conn.close()

    def swap_databases(self, tenant, replacement: str, previous: str) -> None:
        """Put ``replacement`` under the tenant's name, keeping the old database, with
        its write-ahead log, as ``previous``.

        The old files are hard-linked to their new names before the live name is
        given to the replacement in one rename: at every instant the live name names a
        whole database, and whatever still has the old files open (nothing should,
        after the drain) writes into the kept database, never into a removed log."""
        live, new, kept = (self._path(n) for n in (tenant.db_name, replacement, previous))
        _checkpoint(new)
        for suffix in ("-wal", "-shm"):  # the replacement is closed: its log is folded in
            Path(f"{new}{suffix}").unlink(missing_ok=True)
        _checkpoint(live)
        for suffix in ("", "-wal", "-shm"):
            if Path(f"{live}{suffix}").exists():
                os.link(f"{live}{suffix}", f"{kept}{suffix}")
        for suffix in ("-wal", "-shm"):
            Path(f"{live}{suffix}").unlink(missing_ok=True)
        os.replace(new, live)

    def finish_or_undo_swap(self, tenant, replacement: str, previous: str) -> bool:
        """After a swap was interrupted: True if it had happened (the replacement is in
        place), False if not, in which case any half-made link is removed."""
        live, new, kept = (self._path(n) for n in (tenant.db_name, replacement, previous))
        if not new.exists():
            return kept.exists()
        for suffix in ("", "-wal", "-shm"):
            link, source = Path(f"{kept}{suffix}"), Path(f"{live}{suffix}")
            if not link.exists():
                continue
            if not source.exists():
                os.rename(link, source)  # the live log, unlinked already: put it back
            elif os.path.samefile(link, source):
                link.unlink()  # only ever a second name of the live files
        return False


def _checkpoint(path: Path) -> None:
    """Fold a database's write-ahead log into the file (a no-op without one)."""
    if not path.exists():
        return
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
