"""Finders of user-facing text that is not marked for translation (the guard tests of
tests/web/test_i18n.py use them; each finding names its file and line)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from django.template.base import Lexer, TokenType

SRC = Path(__file__).resolve().parents[2] / "src" / "oxygis"

# Pages for Oxygis's own staff only: the platform console and the e-mails to staff. They
# stay in English (our staff's working language), reviewed here, one by one.
STAFF_ONLY = (
    "platform/templates/console/",
    "platform/templates/platform/email/grant_decided.",
)
# Words that are the same in every language (names, notations).
UNTRANSLATED = {"Oxygis", "OK", "SHA", "oxy", "PDF"}

TAG = re.compile(r"<[^>]*>", re.S)
HIDDEN = re.compile(r"<(script|style)\b.*?</\1>|<!--.*?-->", re.S | re.I)
WORDS = re.compile(r"[A-Za-zÀ-ÿ]{2,}")
ATTRIBUTE = re.compile(r'\b(placeholder|title|aria-label|alt)="([^"]*)"')


def template_findings(text: str) -> list[tuple[int, str]]:
    """(line, text) of visible words outside {% translate %} / {% blocktranslate %}.

    The template is flattened (every tag and variable a placeholder, the inside of a
    blocktranslate dropped), then HTML markup is removed: what remains is what a reader
    sees, and no word of it may be left untranslated."""
    flat = []
    depth = 0  # inside blocktranslate, or a comment block
    for token in Lexer(text).tokenize():
        content = token.contents
        if token.token_type == TokenType.BLOCK:
            name = content.split(" ", 1)[0]
            if name in ("blocktranslate", "blocktrans", "comment"):
                depth += 1
            elif name in ("endblocktranslate", "endblocktrans", "endcomment"):
                depth -= 1
            flat.append("\x00")
        elif token.token_type == TokenType.VAR:
            flat.append("\x00")
        elif token.token_type == TokenType.TEXT:
            flat.append("\n" * content.count("\n") if depth else content)
    page = HIDDEN.sub(lambda m: "\n" * m[0].count("\n"), "".join(flat))
    findings = []
    for match in ATTRIBUTE.finditer(page):
        value = match[2].replace("\x00", "")
        if WORDS.search(value) and value not in UNTRANSLATED:
            findings.append((page.count("\n", 0, match.start()) + 1, f'{match[1]}="{value}"'))
    visible = TAG.sub(lambda m: " " + "\n" * m[0].count("\n"), page)
    for number, line in enumerate(visible.split("\n"), start=1):
        for chunk in re.split(r"\x00|\s{2,}", line):
            chunk = re.sub(r"&[a-z]+;|&#x?[0-9a-f]+;", " ", chunk).strip()
            words = [w for w in WORDS.findall(chunk) if w not in UNTRANSLATED]
            if words:
                findings.append((number, chunk))
    return findings


def templates():
    for path in sorted(SRC.rglob("templates/**/*")):
        relative = path.relative_to(SRC).as_posix()
        if path.suffix in (".html", ".txt") and not relative.startswith(STAFF_ONLY):
            yield relative, path.read_text()


# --- Python -------------------------------------------------------------------------------
KEYWORDS = {"label", "help_text", "verbose_name", "verbose_name_plural", "empty_label"}
# Calls whose first argument a user reads: messages, form errors, refusals.
CALLS = {
    "success",
    "error",
    "info",
    "warning",
    "ValidationError",
    "ActionRefused",
    "PortalRefused",
    "StaleRevision",
    "SignInRefused",
    "LastSecondFactor",
    "IllegalTransition",
}
LOGGERS = {"log", "logger", "logging"}


def _literal(node) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value for v in node.values if isinstance(v, ast.Constant))
    return None


def python_findings(source: str) -> list[tuple[int, str]]:
    """(line, text) of string literals a user reads that are not passed through _()."""
    findings = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        owner = getattr(func.value, "id", "") if isinstance(func, ast.Attribute) else ""
        candidates = [kw.value for kw in node.keywords if kw.arg in KEYWORDS]
        if name in CALLS and owner not in LOGGERS and node.args:
            # messages.x(request, "..."): the text is the second argument
            index = 1 if owner == "messages" else 0
            if len(node.args) > index:
                candidates.append(node.args[index])
        for value in candidates:
            text = _literal(value)
            if text is not None and WORDS.search(text):
                findings.append((value.lineno, text))
    return findings


# Modules whose messages reach the tenant's people (pages, e-mails, form errors).
USER_FACING_PYTHON = (
    "accounts",
    "backups/views.py",
    "portal",
    "sales",
    "web",
    "platform/support_views.py",
    "platform/tickets.py",
    "core/text.py",
    "audit/events.py",
)


# The API speaks to programs: its messages stay in English, like its field names.
PROGRAM_FACING = ("sales/api.py",)


def python_modules():
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC).as_posix()
        if "/migrations/" in relative or not relative.startswith(USER_FACING_PYTHON):
            continue
        if relative in PROGRAM_FACING:
            continue
        yield relative, path.read_text()


COMPREHENSIONS = (ast.GeneratorExp, ast.ListComp, ast.SetComp, ast.DictComp, ast.Lambda)


def _own_nodes(node):
    """The nodes of a function's own scope: not those of nested comprehensions, lambdas
    or functions (their names are theirs)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (*COMPREHENSIONS, ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        yield child
        yield from _own_nodes(child)


def gettext_shadowed(source: str) -> list[tuple[int, str]]:
    """Functions that call _() but also assign a local _ (UnboundLocalError at run time)."""
    found = []
    for function in ast.walk(ast.parse(source)):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        own = list(_own_nodes(function))
        stores = any(
            isinstance(n, ast.Name) and n.id == "_" and isinstance(n.ctx, ast.Store) for n in own
        )
        calls = any(
            isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "_"
            for n in own
        )
        if stores and calls:
            found.append((function.lineno, function.name))
    return found
