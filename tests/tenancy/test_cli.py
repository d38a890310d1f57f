"""The ``oxygis tenant`` command as an operator uses it: real processes, real exit codes.

Errors are one line on stderr with exit code 2, never a traceback."""

import pytest

from oxygis.tenancy.models import Tenant
from tests.fixtures import unique_slug
from tests.served import oxygis


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["create", "Bad_Slug", "--name", "X"], "invalid slug"),
        (["create", "www", "--name", "X"], "reserved"),
        (["create", "okay-slug", "--name", "X", "--plan", "gold"], "unknown plan"),
        (["suspend", "no-such-tenant"], "no tenant 'no-such-tenant'"),
        (["migrate"], "--all"),
    ],
)
def test_cli_errors_are_one_line_with_exit_code_2(args, fragment):
    """C9: refusals of the tenant command are clear, single-line, exit code 2."""
    assert_one_line_error(oxygis("tenant", *args), fragment)


def test_cli_full_life_cycle():
    """C9: create, list, suspend, resume, migrate, drop, as an operator types them."""
    slug = unique_slug("cli")
    created = oxygis("tenant", "create", slug, "--name", "CLI Corp", "--plan", "paid")
    assert created.returncode == 0, created.stderr
    assert f"https://{slug}.localhost/" in created.stdout
    assert "password:" in created.stdout and "shown once" in created.stdout

    assert_one_line_error(oxygis("tenant", "create", slug, "--name", "Again"), "already exists")

    listed = oxygis("tenant", "list")
    row = next(line for line in listed.stdout.splitlines() if line.startswith(slug))
    assert "paid" in row and "active" in row

    assert oxygis("tenant", "suspend", slug).returncode == 0
    assert Tenant.objects.get(slug=slug).state == Tenant.SUSPENDED
    assert_one_line_error(oxygis("tenant", "suspend", slug), "not active")
    assert oxygis("tenant", "resume", slug).returncode == 0
    assert Tenant.objects.get(slug=slug).state == Tenant.ACTIVE

    migrated = oxygis("tenant", "migrate", "--all")
    assert migrated.returncode == 0, migrated.stderr
    assert f"{slug}: up to date" in migrated.stdout

    # No terminal and no --yes: refuse, keep everything.
    assert_one_line_error(oxygis("tenant", "drop", slug, input=""), "--yes")
    assert Tenant.objects.filter(slug=slug).exists()
    dropped = oxygis("tenant", "drop", slug, "--yes")
    assert dropped.returncode == 0, dropped.stderr
    assert not Tenant.objects.filter(slug=slug).exists()


def test_usage_errors_exit_2():
    """Unknown actions and missing arguments are usage errors (exit 2), not tracebacks."""
    result = oxygis("tenant", "explode")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    result = oxygis("tenant", "create", "acme")  # --name is required
    assert result.returncode == 2 and "--name" in result.stderr


def test_bad_settings_are_one_line():
    """A mistyped setting names the variable; no traceback."""
    assert_one_line_error(oxygis("tenant", "list", env={"OXYGIS_DEBUG": "perhaps"}), "OXYGIS_DEBUG")
    assert_one_line_error(
        oxygis("tenant", "list", env={"OXYGIS_DATABASE_URL": "mysql://x@y/z"}),
        "OXYGIS_DATABASE_URL",
    )


def test_unreachable_database_is_one_line_without_secrets():
    """A database that cannot be reached is one line, and the password is not in it."""
    url = "postgresql://someone:Sup3r-Secret@127.0.0.1:1/nowhere"
    result = oxygis("tenant", "list", env={"OXYGIS_DATABASE_URL": url})
    assert_one_line_error(result, "OperationalError")
    assert "Sup3r-Secret" not in result.stderr + result.stdout


def test_migrations_match_the_models():
    """Every model change has its migration (a tenant migrated later gets the same
    schema as a new one)."""
    result = oxygis("makemigrations", "--check", "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
