"""PostgreSQL: one database and one login role per tenant (C9).

Each tenant database is a copy of a migrated template (``CREATE DATABASE ... TEMPLATE``),
owned by the tenant's own role, with CONNECT revoked from PUBLIC: a tenant's credentials
open its own database and no other. The role password is sent to the server only as a
SCRAM verifier and kept in the catalog only sealed.

This module is the engine layer: it is on the raw-SQL allow-list because DDL (roles,
databases, ownership) is not something the ORM builds. Every identifier goes through
psycopg.sql.Identifier and every name is derived from the tenant's immutable id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from contextlib import contextmanager

import psycopg
from django.conf import settings
from psycopg import sql

from ..sealing import seal, unseal
from . import Engine, EngineError

# Relations whose ownership moves to the tenant role after the copy; identity sequences
# follow their table.
_OWNED_RELATIONS = """
SELECT c.oid::regclass::text FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid
                  AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))
"""


# Tables the tenant's role may read and add to, never change (C17, ``protect_audit``).
_AUDIT_TABLES = ("audit_auditevent",)


# Tenant roles log in with a random 256-bit secret (secrets.token_urlsafe(32)), never a
# password a person chose. Key stretching (RFC 7677's 4,096 rounds) only slows guessing a
# weak password from a stolen verifier; against a 256-bit secret guessing is hopeless at
# any count. Its cost, paid by the client at every login (about 2 ms of CPU here), is
# what a new session through PgBouncer costs most (tenancy/pool.py, bench/scale.py): so
# tenant roles get few rounds. Administrators' and people's passwords are not set here.
TENANT_ROLE_SCRAM_ITERATIONS = 64


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores, computed here (RFC 5802/7677)."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = base64.b64encode
    return (
        f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}"
        f"${b64(stored_key).decode()}:{b64(server_key).decode()}"
    )


def empty_public_schema(entry: dict) -> None:
    """Drop everything in the public schema of the database behind ``entry`` (Django's
    settings) with its own login: a catalog a disaster recovery is about to fill, which
    the caller checked holds no tenant (backups/recovery.py). That login owns the
    database, hence its public schema."""
    params = {
        "dbname": entry["NAME"],
        "user": entry["USER"],
        "host": entry["HOST"],
        "port": entry["PORT"] or 5432,
        "connect_timeout": 10,
        **entry.get("OPTIONS", {}),
    }
    if entry["PASSWORD"]:
        params["password"] = entry["PASSWORD"]
    with psycopg.connect(**params, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


# The application_name of backup sessions (backups/dumps.py): a suspension spares them.
BACKUP_APPLICATION = "oxygis-backup"


class PostgreSQLEngine(Engine):
    @property
    def template_name(self) -> str:
        return f"{settings.DB_PREFIX}template"

    def _admin_password(self) -> str:
        sealed = self.server.admin_password_sealed
        return unseal(sealed) if sealed else ""

    def _conninfo(self, dbname: str, user: str, password: str) -> dict:
        params = {
            "dbname": dbname,
            "user": user,
            "host": self.server.host,
            "port": self.server.port or 5432,
            "connect_timeout": 10,
            **self.server.options,
        }
        if password:
            params["password"] = password
        return params

    @contextmanager
    def admin(self, dbname: str | None = None):
        info = self._conninfo(
            dbname or self.server.admin_database, self.server.admin_user, self._admin_password()
        )
        try:
            conn = psycopg.connect(**info, autocommit=True)
        except psycopg.OperationalError as exc:
            raise EngineError(
                f"cannot reach database server {self.server.name} "
                f"({self.server.address}): "
                f"{str(exc).strip().splitlines()[-1]}"
            ) from None
        try:
            yield conn
        finally:
            conn.close()

    def can_provision(self) -> bool:
        """Whether the administrative login may create roles and databases."""
        with self.admin() as conn:
            return conn.execute(
                "SELECT (rolcreaterole AND rolcreatedb) OR rolsuper FROM pg_roles"
                " WHERE rolname = current_user"
            ).fetchone()[0]

    @contextmanager
    def admin_member(self, host: str, port: str):
        """The administrative login on one member of a cluster, whatever its role (a
        standby included: for status, never for writes)."""
        info = self._conninfo(
            self.server.admin_database, self.server.admin_user, self._admin_password()
        )
        info |= {"host": host, "port": port, "target_session_attrs": "any", "connect_timeout": 5}
        with psycopg.connect(**info, autocommit=True) as conn:
            yield conn

    def _entry(self, dbname: str, user: str, password: str) -> dict:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": dbname,
            "USER": user,
            "PASSWORD": password,
            "HOST": self.server.host,
            "PORT": str(self.server.port or ""),
            "OPTIONS": dict(self.server.options),
            "CONN_MAX_AGE": 0,
        }

    def tenant_entry(self, tenant) -> dict:
        return self._entry(tenant.db_name, tenant.db_name, unseal(tenant.db_password_sealed))

    def template_entry(self) -> dict:
        return self._entry(self.template_name, self.server.admin_user, self._admin_password())

    def create_template_storage(self) -> None:
        with self.admin() as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [self.template_name]
            ).fetchone()
            if not exists:
                conn.execute(
                    sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.template_name))
                )
                conn.execute(
                    sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(
                        sql.Identifier(self.template_name)
                    )
                )

    @contextmanager
    def template_lock(self):
        # A session-level advisory lock: held across provisioning processes and hosts.
        with self.admin() as conn:
            key = int.from_bytes(hashlib.sha256(self.template_name.encode()).digest()[:7], "big")
            conn.execute("SELECT pg_advisory_lock(%s)", [key])
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", [key])

    def _create_role(self, conn, role: str, password: str) -> None:
        conn.execute(
            sql.SQL(
                "CREATE ROLE {} LOGIN PASSWORD {} NOSUPERUSER NOCREATEDB NOCREATEROLE "
                "NOINHERIT NOREPLICATION NOBYPASSRLS"
            ).format(
                sql.Identifier(role),
                sql.Literal(scram_verifier(password, TENANT_ROLE_SCRAM_ITERATIONS)),
            )
        )
        # Sessions start in the time zone Django wants: no SET TIME ZONE (and commit) on
        # each new connection, direct or through a pooler (tenancy/pool.py).
        conn.execute(
            sql.SQL("ALTER ROLE {} SET timezone = {}").format(
                sql.Identifier(role), sql.Literal(settings.TIME_ZONE)
            )
        )

    def create_database(self, tenant) -> str:
        name = sql.Identifier(tenant.db_name)
        password = secrets.token_urlsafe(32)
        with self.admin() as conn:
            self._create_role(conn, tenant.db_name, password)
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {} OWNER {}").format(
                    name, sql.Identifier(self.template_name), name
                )
            )
            conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(name))
        # The copied tables belong to whoever migrated the template: give them to the
        # tenant role, so that it owns its objects and can migrate them itself.
        with self.admin(tenant.db_name) as conn, conn.transaction():
            # The role is NOINHERIT, so pg_database_owner's rights on the public schema
            # do not reach it: it must own the schema to create tables in later migrations.
            conn.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(name))
            for (relation,) in conn.execute(_OWNED_RELATIONS).fetchall():
                conn.execute(sql.SQL("ALTER TABLE {} OWNER TO {}").format(sql.SQL(relation), name))
        self.protect_audit(tenant)
        return seal(password)

    def protect_audit(self, tenant, name: str | None = None) -> None:
        # Owned by the server's administrative role, the audit table cannot be changed
        # by the tenant's role, nor can that role take the rights back (an owner could).
        role = sql.Identifier(tenant.db_name)
        with self.admin(name or tenant.db_name) as conn, conn.transaction():
            for table in _AUDIT_TABLES:
                conn.execute(
                    sql.SQL("ALTER TABLE {} OWNER TO {}").format(
                        sql.Identifier(table), sql.Identifier(self.server.admin_user)
                    )
                )
                conn.execute(
                    sql.SQL("REVOKE ALL ON {} FROM {}").format(sql.Identifier(table), role)
                )
                conn.execute(
                    sql.SQL("GRANT SELECT, INSERT ON {} TO {}").format(sql.Identifier(table), role)
                )
                # pg_dump, run as the tenant's role, reads the id sequence's position too.
                (sequence,) = conn.execute(
                    "SELECT pg_get_serial_sequence(%s, 'id')", [table]
                ).fetchone()
                conn.execute(
                    sql.SQL("GRANT SELECT ON SEQUENCE {} TO {}").format(sql.SQL(sequence), role)
                )

    def release_audit(self, tenant, name: str | None = None) -> None:
        role = sql.Identifier(tenant.db_name)
        with self.admin(name or tenant.db_name) as conn, conn.transaction():
            for table in _AUDIT_TABLES:
                conn.execute(
                    sql.SQL("ALTER TABLE {} OWNER TO {}").format(sql.Identifier(table), role)
                )

    def prune_audit(self, entry: dict, before_seq: int) -> int:
        with self.admin(entry["NAME"]) as conn:
            return conn.execute(
                "DELETE FROM audit_auditevent WHERE seq < %s", [before_seq]
            ).rowcount

    def revoke_public_connect(self, dbname: str) -> None:
        with self.admin() as conn:
            conn.execute(
                sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(dbname))
            )

    def drop_database(self, tenant) -> None:
        name = sql.Identifier(tenant.db_name)
        with self.admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
            # Databases kept by a live restore (``<db>_p...``) or left by one that failed
            # (``<db>_r...``) belong to the tenant too.
            like = tenant.db_name.replace("_", r"\_") + r"\_%"
            for (other,) in conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", [like]
            ).fetchall():
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(other))
                )
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(name))

    def end_serving_sessions(self, tenant) -> int:
        # Every process's pooled sessions and the pooler's server connections (which do
        # not carry our application_name): a suspended tenant keeps none open. Only a
        # backup of it in progress goes on.
        with self.admin() as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND application_name <> %s AND pid <> pg_backend_pid()",
                [tenant.db_name, BACKUP_APPLICATION],
            ).fetchall()
        return len(rows)

    def database_exists(self, tenant) -> bool:
        with self.admin() as conn:
            row = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [tenant.db_name]
            ).fetchone()
        return row is not None

    # --- restores ---------------------------------------------------------------------
    def create_tenant_storage(self, tenant) -> str:
        password = secrets.token_urlsafe(32)
        with self.admin() as conn:
            self._create_role(conn, tenant.db_name, password)
        self.create_named_database(tenant.db_name, tenant)
        return seal(password)

    def entry_named(self, tenant, name: str | None) -> dict:
        if tenant is None:
            return self._entry(name, self.server.admin_user, self._admin_password())
        return self._entry(
            name or tenant.db_name, tenant.db_name, unseal(tenant.db_password_sealed)
        )

    def create_named_database(self, name: str, owner_tenant=None) -> None:
        owner = sql.Identifier(owner_tenant.db_name if owner_tenant else self.server.admin_user)
        with self.admin() as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE template0").format(
                    sql.Identifier(name), owner
                )
            )
            conn.execute(
                sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(name))
            )
        if owner_tenant is not None:
            with self.admin(name) as conn:
                conn.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(owner))

    def drop_named_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def drop_prefixed(self, prefix: str) -> list[str]:
        """Drop every database and role whose name starts with ``prefix`` (what a DR
        drill made); returns the databases dropped."""
        like = prefix.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%") + "%"
        with self.admin() as conn:
            names = [
                name
                for (name,) in conn.execute(
                    "SELECT datname FROM pg_database WHERE datname LIKE %s", [like]
                ).fetchall()
            ]
            for name in names:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
            for (role,) in conn.execute(
                "SELECT rolname FROM pg_roles WHERE rolname LIKE %s", [like]
            ).fetchall():
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        return names

    @staticmethod
    def _swap_session(tenant) -> str:
        return f"oxygis-swap {tenant.db_name}"[:63]

    def swap_databases(self, tenant, replacement: str, previous: str) -> None:
        live, new, old = (sql.Identifier(n) for n in (tenant.db_name, replacement, previous))
        with self.admin() as conn:
            # Named, so that a recovery can end this session if our process dies in it.
            conn.execute(
                "SELECT set_config('application_name', %s, false)", [self._swap_session(tenant)]
            )
            # No new sessions, end the open ones, then rename: nothing writes to the old
            # database after the swap, and it stays closed (kept only for a rollback).
            conn.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(live))
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                [tenant.db_name],
            )
            # Both renames in one transaction: a process killed between them leaves the
            # names as they were, never the live name missing.
            with conn.transaction():
                conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(live, old))
                conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(new, live))
            # A database kept by an earlier swap comes back closed: open it (rollback).
            conn.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(live))

    def finish_or_undo_swap(self, tenant, replacement: str, previous: str) -> bool:
        """After a swap was interrupted: True if it had happened (finishing a half-done
        one: the live name renamed away, the replacement not yet in place), False if
        not, in which case the live database is opened again."""
        with self.admin() as conn:
            # The dead process's session may still be running its last statement (the
            # server finishes what it received): end it, and wait, before looking.
            conn.execute(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
                "WHERE application_name = %s AND pid <> pg_backend_pid()",
                [self._swap_session(tenant)],
            )
            names = {
                row[0]
                for row in conn.execute(
                    "SELECT datname FROM pg_database WHERE datname = ANY(%s)",
                    [[tenant.db_name, replacement, previous]],
                ).fetchall()
            }
            live = sql.Identifier(tenant.db_name)
            if tenant.db_name not in names and {replacement, previous} <= names:
                conn.execute(
                    sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                        sql.Identifier(replacement), live
                    )
                )
                names = (names - {replacement}) | {tenant.db_name}
            if tenant.db_name in names:
                conn.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(live))
            return replacement not in names
