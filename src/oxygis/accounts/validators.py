"""C13: the whitepaper's password rule, as a Django password validator.

At least 10 characters (or the tenant's longer minimum), with an upper-case letter, a
lower-case letter, a digit and a special character. The message names exactly what is
missing. Django's common-password, numeric and similarity validators run beside it.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from oxygis.tenancy.context import bound_database

from .models import POLICY_MIN_LENGTH

_CLASSES = [
    ("an upper-case letter", str.isupper),
    ("a lower-case letter", str.islower),
    ("a digit", str.isdigit),
    ("a special character (such as ! ? # - _)", lambda c: not c.isalnum() and not c.isspace()),
]


def required_length() -> int:
    """The bound database's minimum: the tenant's policy, never under the floor."""
    if bound_database() is None:
        return POLICY_MIN_LENGTH
    from .models import SecurityPolicy

    return max(POLICY_MIN_LENGTH, SecurityPolicy.current().min_password_length)


def missing_requirements(password: str, min_length: int) -> list[str]:
    missing = []
    if len(password) < min_length:
        missing.append(f"at least {min_length} characters (it has {len(password)})")
    missing += [label for label, test in _CLASSES if not any(test(c) for c in password)]
    return missing


class PasswordPolicyValidator:
    def validate(self, password, user=None):
        missing = missing_requirements(password, required_length())
        if missing:
            raise ValidationError(
                _("This password is missing: %(missing)s."),
                code="password_policy",
                params={"missing": "; ".join(missing)},
            )

    def get_help_text(self):
        return (
            f"At least {required_length()} characters, with an upper-case letter, a "
            "lower-case letter, a digit and a special character."
        )
