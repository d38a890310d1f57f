"""C13: the password policy, on every path that sets a password."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from oxygis.accounts.models import SecurityPolicy
from oxygis.tenancy.databases import tenant_context
from tests.tenancy.test_cli import assert_one_line_error, oxygis


@pytest.mark.parametrize(
    ("password", "missing"),
    [
        ("Short-1!", "at least 10 characters (it has 8)"),
        ("lowercase-only-1!", "an upper-case letter"),
        ("UPPERCASE-ONLY-1!", "a lower-case letter"),
        ("No-Digits-Here!", "a digit"),
        ("NoSpecial12345", "a special character"),
    ],
)
def test_each_missing_requirement_is_named(password, missing):
    """C13: a password lacking one class is refused, and the message says which."""
    with pytest.raises(ValidationError) as info:
        validate_password(password)
    assert missing in " ".join(info.value.messages)


def test_all_missing_requirements_are_listed_at_once():
    """C13: every missing requirement is named in one message."""
    with pytest.raises(ValidationError) as info:
        validate_password("abc")
    message = " ".join(info.value.messages)
    for part in ("at least 10 characters", "an upper-case letter", "a digit", "a special"):
        assert part in message


def test_compliant_password_passes_and_common_ones_do_not():
    """C13: the rule plus Django's common-password and numeric validators."""
    validate_password("Tulip-Orbit-73")
    with pytest.raises(ValidationError, match="too common"):
        validate_password("Feder_1941")  # passes the classes, but it is on the list


def test_tenant_may_be_stricter_never_weaker(alpha):
    """C13: an admin can raise the minimum length, never lower it under 10."""
    with tenant_context(alpha.tenant):
        policy = SecurityPolicy.current()
        policy.min_password_length = 14
        policy.save()
        try:
            with pytest.raises(ValidationError, match="at least 14 characters"):
                validate_password("Tulip-Orbit-7")  # 13 characters
            validate_password("Tulip-Orbit-738")
        finally:
            policy.min_password_length = 10
            policy.save()

    admin = alpha.client()
    admin.sign_in(alpha.owner_username, alpha.owner_password)
    response = admin.post("/settings/policy/", {"min_password_length": 8, "two_factor": "optional"})
    assert (
        response.status_code == 200 and "greater than or equal to 10" in response.content.decode()
    )
    with tenant_context(alpha.tenant), pytest.raises(IntegrityError):
        SecurityPolicy.objects.filter(pk=1).update(min_password_length=6)


def test_password_change_form_applies_the_policy(alpha):
    """C13: the change-password form refuses a weak password with the exact reason."""
    client = alpha.client()
    client.sign_in("member", alpha.member_password)
    response = client.post(
        "/accounts/password/",
        {
            "old_password": alpha.member_password,
            "new_password1": "weakpassword",
            "new_password2": "weakpassword",
        },
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "an upper-case letter" in html and "a digit" in html


def test_cli_set_password_applies_the_policy(alpha):
    """C13: the operator's CLI path refuses a weak password (one line, exit 2) and accepts a
    strong one, read from standard input, never from the command line."""
    slug = alpha.tenant.slug
    weak = oxygis("user", "--tenant", slug, "set-password", "member", input="weak\n")
    assert_one_line_error(weak, "at least 10 characters")
    ok = oxygis(
        "user", "--tenant", slug, "set-password", "member", input=alpha.member_password + "\n"
    )
    assert ok.returncode == 0, ok.stderr
    alpha.client().sign_in("member", alpha.member_password)


def test_cli_needs_an_existing_active_tenant():
    """Fail closed: a tenant command with an unknown tenant does nothing."""
    assert_one_line_error(oxygis("user", "--tenant", "no-such", "list"), "no tenant 'no-such'")
    result = oxygis("user", "list")
    assert result.returncode == 2 and "--tenant" in result.stderr


def test_cli_lists_users_and_unlocks(alpha):
    """S12: the operator lists users and lifts a lockout from the CLI (audited)."""
    result = oxygis("user", "--tenant", alpha.tenant.slug, "list")
    assert result.returncode == 0 and "member" in result.stdout and "Administrator" in result.stdout
    unlocked = oxygis("user", "--tenant", alpha.tenant.slug, "unlock", "member")
    assert unlocked.returncode == 0 and "lockout lifted" in unlocked.stdout
    with tenant_context(alpha.tenant):
        from oxygis.audit.models import AuditEvent

        assert AuditEvent.objects.filter(action="login.unlocked", target="member").exists()


def test_first_admin_of_a_tenant_meets_the_policy(tenant_factory):
    """C13: the generated first-admin password passes the policy it is checked against."""
    made = tenant_factory()
    validate_password(made.admin_password)
    with tenant_context(made.tenant):
        assert get_user_model().objects.get(username="admin").check_password(made.admin_password)
