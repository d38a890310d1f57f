"""S2, S3, S4, S5: a lint of the source for patterns that bypass the ORM, the escaping or
CSRF, or run strings as code. Each use must be on the allow-list below, with its reason.
(As Zulip's custom_check.py: the rules are tested on good and bad examples too.)"""

import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "oxygis"

RULES = {
    "raw SQL (S2)": re.compile(
        r"\.raw\(|\bcursor\(\)|\bRawSQL\b|\.extra\(|psycopg\.connect\("
        r"|\.execute\(\s*(f?[\"']|sql\.)"
    ),
    "unescaped output (S3)": re.compile(r"mark_safe|\|\s*safe\b|autoescape\s+off|format_html\("),
    "CSRF exemption (S4)": re.compile(r"csrf_exempt|@csrf_token_only"),
    "audit rows changed (C17)": re.compile(r"AuditEvent\b.*\.(update|delete|bulk_update)\("),
    "code or shell from strings (S5)": re.compile(
        r"\beval\(|\bexec\(|shell=True|pickle\.loads|__import__\(|import_module\(\s*request"
    ),
}

# path (relative to src/oxygis) -> the rules it may break, and why.
ALLOWED = {
    "portal/views.py": {
        "CSRF exemption (S4)": "the portal page is served with no-referrer, so browsers "
        "post its forms with Origin: null; the CSRF token is still required (web/csrf.py)",
    },
    "backups/dumps.py": {
        "raw SQL (S2)": "counts rows per table in the dump's own snapshot (exported for "
        "pg_dump), on the engine connection; table names via psycopg.sql.Identifier",
    },
    "backups/pitr.py": {
        "raw SQL (S2)": "ALTER SYSTEM for the archive settings and reads of pg_stat_archiver, "
        "which the ORM has no call for; names via psycopg.sql.Identifier, values as Literal",
    },
    "tenancy/guard.py": {
        "raw SQL (S2)": "advisory lock functions (pg_try_advisory_lock_shared and kin), "
        "which the ORM has no call for; keys are integers passed as parameters",
    },
    "tenancy/pool.py": {
        "raw SQL (S2)": "pg_advisory_unlock_all() on a connection given back, so that no "
        "session lock outlives the unit of work; no input in it",
    },
    "tenancy/replication.py": {
        "raw SQL (S2)": "reads of pg_is_in_recovery() and pg_stat_replication on each member "
        "of a cluster, which the ORM has no call for; no input in them",
    },
    "tenancy/engines/sqlite.py": {
        "raw SQL (S2)": "PRAGMA wal_checkpoint before a swap, and the audit retention's "
        "DELETE of a signed segment (C17); the bound is a parameter",
    },
    "audit/chain.py": {
        "raw SQL (S2)": "pg_advisory_xact_lock(), which the ORM has no call for, so that "
        "appends to the audit chain are serialised; the key is a constant parameter",
    },
    "tenancy/engines/postgresql.py": {
        "raw SQL (S2)": "DDL for roles, databases and ownership, which the ORM cannot build; "
        "identifiers via psycopg.sql.Identifier, values as parameters",
    },
}


def violations(path: str, text: str) -> list[str]:
    allowed = ALLOWED.get(path, {})
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for rule, pattern in RULES.items():
            if pattern.search(line) and rule not in allowed:
                found.append(f"{path}:{number}: {rule}: {line.strip()}")
    return found


@pytest.mark.parametrize(
    ("line", "rule"),
    [
        ('Order.objects.raw("SELECT * FROM sales_order")', "raw SQL (S2)"),
        ("with connection.cursor() as c:", "raw SQL (S2)"),
        ('qs.annotate(x=RawSQL("1", []))', "raw SQL (S2)"),
        ('qs.extra(where=["1=1"])', "raw SQL (S2)"),
        ("conn = psycopg.connect(dsn)", "raw SQL (S2)"),
        ('conn.execute("DELETE FROM sales_order")', "raw SQL (S2)"),
        ("cursor.execute(sql.SQL('DROP TABLE {}').format(name))", "raw SQL (S2)"),
        ("return mark_safe(html)", "unescaped output (S3)"),
        ("{{ comment|safe }}", "unescaped output (S3)"),
        ("{% autoescape off %}", "unescaped output (S3)"),
        ("@csrf_exempt", "CSRF exemption (S4)"),
        ("@csrf_token_only", "CSRF exemption (S4)"),
        ("AuditEvent.objects.filter(seq=3).update(actor='x')", "audit rows changed (C17)"),
        ("AuditEvent.objects.all().delete()", "audit rows changed (C17)"),
        ("eval(expression)", "code or shell from strings (S5)"),
        ("subprocess.run(cmd, shell=True)", "code or shell from strings (S5)"),
    ],
)
def test_guard_catches_bad_examples(line, rule):
    """S2/S3/S4/S5: each rule fires on its bad example."""
    assert any(rule in v for v in violations("x.py", line))


@pytest.mark.parametrize(
    "line",
    [
        "Order.objects.filter(number__icontains=query)",
        "{{ comment }}",
        "{% csrf_token %}",
        "retrieval = evaluate(x)",
        'subprocess.run(["pg_dump", name])',
        "safe_name = slugify(name)",
        "AuditEvent.objects.filter(action=action)",
        "return super().execute(*args, **options)",
    ],
)
def test_guard_passes_good_examples(line):
    """S2/S3/S4/S5: ordinary code is not flagged."""
    assert violations("x.py", line) == []


def test_source_tree_has_no_unlisted_dangerous_pattern():
    """S2/S3/S4/S5: no file outside the allow-list uses a forbidden pattern."""
    found = []
    for path in sorted(SRC.rglob("*")):
        if path.suffix in (".py", ".html", ".txt") and "migrations" not in path.parts:
            found += violations(str(path.relative_to(SRC)), path.read_text())
    assert found == [], "\n".join(found)


def test_allow_list_has_no_stale_entries():
    """Every allow-listed file exists and still needs its exemption."""
    for path, rules in ALLOWED.items():
        text = (SRC / path).read_text()
        for rule in rules:
            assert RULES[rule].search(text), f"{path} no longer needs '{rule}'"


# --- single-line text (attack run, finding 9) ------------------------------------------
# model.field -> why it needs no single-line validator of ours.
TEXT_EXEMPT = {
    "accounts.User.username": "Django's UnicodeUsernameValidator allows only letters, "
    "digits and @.+-_",
    "accounts.User.password": "a hash, set by set_password(), never typed in a field",
}


def unguarded_text_fields(models) -> list[str]:
    """CharFields a user or client can fill that do not refuse line breaks and other
    control characters. Exempt: choices, fields no form or API writes (editable=False),
    e-mail/slug/URL fields, whose own validators refuse them, and TEXT_EXEMPT."""
    from django.db import models as m

    from oxygis.core.text import validate_single_line

    found = []
    for model in models:
        for field in model._meta.get_fields():
            if not isinstance(field, m.CharField) or field.choices or not field.editable:
                continue
            if isinstance(field, m.EmailField | m.SlugField | m.URLField):
                continue
            name = f"{model._meta.label}.{field.name}"
            if validate_single_line not in field.validators and name not in TEXT_EXEMPT:
                found.append(name)
    return found


def test_single_line_guard_on_good_and_bad_examples():
    """S3 (headers): a plain CharField is flagged; one with the validator, a choices
    field, a non-editable one and an e-mail field are not."""
    from django.db import models

    from oxygis.core.text import validate_single_line

    class Example(models.Model):
        bad = models.CharField(max_length=10)
        good = models.CharField(max_length=10, validators=[validate_single_line])
        state = models.CharField(max_length=10, choices=[("a", "A")])
        number = models.CharField(max_length=10, editable=False)
        email = models.EmailField()

        class Meta:
            app_label = "core"
            managed = False

        def __str__(self):
            return self.good

    assert unguarded_text_fields([Example]) == ["core.Example.bad"]


def test_every_text_field_people_type_is_single_line():
    """S3: every CharField of Oxygis's models that a form or the API can write refuses
    line breaks and control characters (a name ends up in e-mail headers)."""
    from django.apps import apps

    ours = [m for m in apps.get_models() if m.__module__.startswith("oxygis.")]
    assert unguarded_text_fields(ours) == []
    from django.core.validators import EmailValidator

    from oxygis.core.text import validate_single_line

    for value in ("a@b.example\r\nBcc: x@y.example", "a\n@b.example"):
        with pytest.raises(Exception):  # noqa: B017 - Django's own validator refuses it
            EmailValidator()(value)
    with pytest.raises(Exception):  # noqa: B017
        validate_single_line("Evil\r\nBcc: victim@example.com")
