"""C14: restricted production access. The ``oxygis`` command offers Oxygis's own commands
and a reviewed few of Django's in production; every run leaves an event in the platform's
audit log with the operating-system user and host; staff are made only through it (or a
console admin), audited."""

from __future__ import annotations

import ast
import getpass
import os
import socket
from pathlib import Path

import pytest

from oxygis.audit.models import AuditEvent
from oxygis.platform.models import StaffMember
from oxygis.platform.operators import is_offered, redacted
from oxygis.tenancy.context import CATALOG, using_database
from tests.fixtures import unique_slug
from tests.served import oxygis
from tests.tenancy.test_cli import assert_one_line_error
from tests.web.test_serve import PRODUCTION_OK

OPERATOR = f"operator {getpass.getuser()}@{socket.gethostname()}"


def last_event(action, target):
    with using_database(CATALOG):
        return AuditEvent.objects.filter(action=action, target=target).order_by("-seq").first()


def test_every_operator_command_is_in_the_platform_audit_log():
    """C14, C17: a command an operator runs is recorded with their OS user and host."""
    before = last_event("operator.command", "tenant")
    assert oxygis("tenant", "list").returncode == 0
    event = last_event("operator.command", "tenant")
    assert event is not None and event != before
    assert event.actor == OPERATOR and event.details["args"] == ["list"]


def test_staff_are_created_by_the_operator_with_a_checked_password():
    """C14, C13: `oxygis staff create` reads the password from stdin (never argv),
    checks it against the policy, and records who made whom."""
    username = f"ops-{unique_slug()}"
    args = ["staff", "create", username, "--email", f"{username}@oxygis.example"]
    args += ["--name", "Olga Ops", "--role", "operations"]
    weak = oxygis(*args, input="short\n")
    assert_one_line_error(weak, "at least 10 characters")
    made = oxygis(*args, input="Granite-Owl-2026!\n")
    assert made.returncode == 0, made.stderr
    assert "two-factor enrolment comes first" in made.stdout
    with using_database(CATALOG):
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.get(username=username)
        assert user.check_password("Granite-Owl-2026!") and not user.is_superuser
    assert StaffMember.objects.get(user_id=user.pk).role == StaffMember.OPERATIONS
    assert last_event("staff.created", username).actor == OPERATOR
    for bad, fragment in (
        (["--name", "Olga\r\nBcc: x@evil.example"], "line"),
        (["--email", "not-an-address@"], "valid email"),
    ):
        other = [*args[:2], f"x{username}", *args[3:]]
        at = other.index(bad[0])
        other[at + 1] = bad[1]
        assert_one_line_error(oxygis(*other, input="Granite-Owl-2026!\n"), fragment)
    listed = oxygis("staff", "list")
    assert username in listed.stdout and "operations" in listed.stdout
    assert oxygis("staff", "role", username, "security").returncode == 0
    assert oxygis("staff", "disable", username).returncode == 0
    assert last_event("staff.disabled", username).actor == OPERATOR
    assert_one_line_error(oxygis("staff", "disable", "nobody-here"), "no staff member")


@pytest.mark.parametrize(
    "command",
    ["createsuperuser", "changepassword", "shell", "dbshell", "flush", "loaddata", "dumpdata"],
)
def test_production_refuses_the_commands_that_go_around_the_platform(command):
    """C14: in production these are refused with one line and exit code 2."""
    result = oxygis(command, env=PRODUCTION_OK | catalog_env())
    assert_one_line_error(result, f"'{command}' is not available in production")


def catalog_env() -> dict:
    """The run's own catalog for a production-mode process (PostgreSQL pass), else a
    catalog URL nothing answers at (the refusal must not depend on it)."""
    url = os.environ.get("OXYGIS_DATABASE_URL")
    return {"OXYGIS_DATABASE_URL": url or "postgresql://oxygis@127.0.0.1:9/none"}


@pytest.mark.postgresql
def test_a_refused_command_is_recorded_with_the_operator():
    """C14: the refusal itself is in the platform's audit log (PostgreSQL: a production
    process needs a PostgreSQL catalog)."""
    result = oxygis("createsuperuser", "--username", "sneaky", env=PRODUCTION_OK | catalog_env())
    assert result.returncode == 2
    event = last_event("operator.refused", "createsuperuser")
    assert event is not None and event.actor == OPERATOR
    assert event.details["args"] == ["--username", "sneaky"]


def test_the_reviewed_django_commands_and_ours_are_offered(settings_production):
    """C14: migrate, check, showmigrations and Oxygis's commands stay available."""
    for name in ("migrate", "check", "showmigrations", "tenant", "backup", "staff", "serve"):
        assert is_offered(name), name
    for name in ("createsuperuser", "shell", "dbshell", "flush", "diffsettings", "runserver"):
        assert not is_offered(name), name


@pytest.fixture
def settings_production():
    from django.conf import settings

    before = settings.PRODUCTION
    settings.PRODUCTION = True
    yield
    settings.PRODUCTION = before


def test_secrets_in_arguments_are_not_kept():
    """C17: whoever types a credential into a command line does not get it logged."""
    kept = redacted(["--url", "postgresql://admin:hunter2@db/x", "--api-token=abc123"])
    assert "hunter2" not in " ".join(kept) and "abc123" not in " ".join(kept)


def test_tenancy_imports_no_domain_app():
    """Structure (issue 16): the foundation (tenancy) imports nothing from accounts,
    sales, portal or the platform; orchestration lives above it."""
    root = Path(__file__).resolve().parents[2] / "src" / "oxygis" / "tenancy"
    forbidden = ("oxygis.accounts", "oxygis.sales", "oxygis.portal", "oxygis.platform")
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.startswith(forbidden)]
    assert offenders == []
