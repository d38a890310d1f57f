"""Single-line text: what a name, a subject or a header may hold.

Threat: a line break or another control character typed into a name ends up in an e-mail
header (a refused message, a 500, or a forged header), a log line (a forged entry) or a
CSV cell. Single-line fields refuse them at input; headers are cleaned once more when
built, for rows stored before the rule existed.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

# C0 and C1 controls (line feed, carriage return, tab, NUL, escape...) and the Unicode
# line and paragraph separators.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
SINGLE_LINE_MESSAGE = _("Use a single line of text, without line breaks or control characters.")


def validate_single_line(value) -> None:
    if isinstance(value, str) and CONTROL_CHARACTERS.search(value):
        raise ValidationError(SINGLE_LINE_MESSAGE, code="control_characters")


def header_safe(text: str) -> str:
    """``text`` on one line: every control character becomes a space, runs of spaces one."""
    return " ".join(CONTROL_CHARACTERS.sub(" ", str(text)).split())
