"""S2, S3, S4, S5: a lint of the source for patterns that bypass the ORM, the escaping or
CSRF, or run strings as code. Each use must be on the allow-list below, with its reason.
(As Zulip's custom_check.py: the rules are tested on good and bad examples too.)"""

import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "oxygis"

RULES = {
    "raw SQL (S2)": re.compile(r"\.raw\(|\bcursor\(\)|\bRawSQL\b|\.extra\(|psycopg\.connect\("),
    "unescaped output (S3)": re.compile(r"mark_safe|\|\s*safe\b|autoescape\s+off|format_html\("),
    "CSRF exemption (S4)": re.compile(r"csrf_exempt|@csrf_token_only"),
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
        ("return mark_safe(html)", "unescaped output (S3)"),
        ("{{ comment|safe }}", "unescaped output (S3)"),
        ("{% autoescape off %}", "unescaped output (S3)"),
        ("@csrf_exempt", "CSRF exemption (S4)"),
        ("@csrf_token_only", "CSRF exemption (S4)"),
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
