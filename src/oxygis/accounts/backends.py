"""Sign-in by username or e-mail (case-insensitive), with one answer for 'no such user'
and 'wrong password' and comparable timing."""

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.db.models import Q


def find_account(identifier: str):
    """The one user that ``identifier`` (a username or an e-mail address, any case)
    names, or None. Sign-in and the lockout both use it, so that a lockout holds for the
    account whatever identifier is typed (S12)."""
    identifier = (identifier or "").strip()
    if not identifier:
        return None
    match = Q(username__iexact=identifier)
    if "@" in identifier:
        match |= Q(email__iexact=identifier)
    users = list(get_user_model()._default_manager.filter(match)[:2])
    return users[0] if len(users) == 1 else None


class UsernameOrEmailBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None or password is None:
            return None
        user = find_account(username)
        if user is None:
            # Run the hasher anyway so that an unknown name costs what a wrong password
            # costs (no user enumeration by timing).
            get_user_model()().set_password(password)
            return None
        if user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None
