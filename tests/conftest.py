"""Test set-up: a real catalog and real tenant databases on the engine under test.

``OXYGIS_TEST_ENGINE=sqlite`` (default) or ``postgresql``. Each run gets its own var
folder and, on PostgreSQL, its own name prefix (``oxytest_<run>_``) so that nothing
outside the run is touched; leftovers of crashed runs are swept at start.

Under CI=true an unreachable PostgreSQL fails the run; elsewhere the PostgreSQL pass is
skipped with a loud message, never silently.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile

import pytest

ENGINE = os.environ.get("OXYGIS_TEST_ENGINE", "sqlite")
RUN_ID = secrets.token_hex(4)
PREFIX = f"oxytest_{RUN_ID}_"
PG_ADMIN_URL = os.environ.get("OXYGIS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
VAR_DIR = tempfile.mkdtemp(prefix="oxygis-test-")

for key in [k for k in os.environ if k.startswith("OXYGIS_") and not k.startswith("OXYGIS_TEST")]:
    del os.environ[key]  # the developer's own settings must not leak into tests
os.environ.update(
    DJANGO_SETTINGS_MODULE="oxygis.settings",
    OXYGIS_ENV="test",
    OXYGIS_VAR_DIR=VAR_DIR,
    OXYGIS_DB_PREFIX=PREFIX,
    # Workers started by tests do not scan the hosts on their own (tests/security does).
    OXYGIS_SECURITY_SCAN_EVERY_HOURS="0",
)


def _pg_admin():
    import psycopg

    return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)


def _pg_sweep(conn, prefix: str) -> None:
    from psycopg import sql

    like = prefix.replace("_", r"\_") + "%"
    for (name,) in conn.execute(
        "SELECT datname FROM pg_database WHERE datname LIKE %s", [like]
    ).fetchall():
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
    for (name,) in conn.execute(
        "SELECT rolname FROM pg_roles WHERE rolname LIKE %s", [like]
    ).fetchall():
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def _compile_messages() -> None:
    """The French catalog, as `make` compiles it, when pytest is run on its own."""
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "src/oxygis/locale/fr/LC_MESSAGES"
    po, mo = folder / "django.po", folder / "django.mo"
    if not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime:
        from babel.messages.mofile import write_mo
        from babel.messages.pofile import read_po

        with po.open("rb") as source:
            catalog = read_po(source)
        partial = mo.with_suffix(".partial")
        with partial.open("wb") as target:
            write_mo(target, catalog)
        partial.replace(mo)


def pytest_configure(config):
    if ENGINE == "postgresql":
        try:
            conn = _pg_admin()
        except Exception as exc:
            message = f"PostgreSQL at {PG_ADMIN_URL} is unreachable: {exc}"
            if os.environ.get("CI") == "true":
                raise pytest.UsageError(
                    message + " (CI=true: the PostgreSQL pass must run)"
                ) from None
            print(f"\n*** SKIPPING THE POSTGRESQL PASS: {message} ***\n", file=sys.stderr)
            pytest.exit("PostgreSQL unreachable (not under CI)", returncode=0)
        with conn:
            _pg_sweep(conn, "oxytest_")
            conn.execute(f'CREATE DATABASE "{PREFIX}catalog"')
        base = PG_ADMIN_URL.rsplit("/", 1)[0]
        os.environ["OXYGIS_DATABASE_URL"] = f"{base}/{PREFIX}catalog"
    elif ENGINE != "sqlite":
        raise pytest.UsageError(f"OXYGIS_TEST_ENGINE must be sqlite or postgresql, not {ENGINE}")

    _compile_messages()
    import django
    from django.core.management import call_command

    # No setup_test_environment(): mail goes through the real embedded backend (.eml
    # files under var/mail/), as it does for a user.
    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    from oxygis.web.staticfiles import ensure_collected

    ensure_collected()  # as `oxygis serve` does: pages name the hashed files
    # Fixtures import models, so they load once Django is set up.
    config.pluginmanager.import_plugin("tests.fixtures")


def pytest_collection_modifyitems(config, items):
    if ENGINE == "postgresql":
        return
    selected, deselected = [], []
    for item in items:
        (deselected if item.get_closest_marker("postgresql") else selected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


def pytest_unconfigure(config):
    from django.db import connections

    connections.close_all()
    if ENGINE == "postgresql":
        try:
            with _pg_admin() as conn:
                _pg_sweep(conn, PREFIX)
        except Exception as exc:  # report, do not mask the test result
            print(f"warning: could not clean PostgreSQL test databases: {exc}", file=sys.stderr)
    shutil.rmtree(VAR_DIR, ignore_errors=True)


def pytest_sessionfinish(session, exitstatus):
    """Fail the run when a URL pattern was never requested by any test (full runs only)."""
    if os.environ.get("OXYGIS_TEST_URL_COVERAGE") != "1" or exitstatus != 0:
        return
    from tests.fixtures import EXERCISED_ROUTES, all_routes

    missing = sorted(all_routes() - EXERCISED_ROUTES)
    if missing:
        print("\nURL patterns no test requested:", file=sys.stderr)
        for urlconf, route in missing:
            print(f"  {urlconf}: /{route}", file=sys.stderr)
        session.exitstatus = 1
