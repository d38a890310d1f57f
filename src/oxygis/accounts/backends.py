"""Sign-in: through the tenant's directory when it has one switched on (S7); else by
username or e-mail (case-insensitive), with one answer for 'no such user' and 'wrong
password' and comparable timing."""

import logging

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.db.models import Q

from .models import DirectoryConfig, OpenIDConfig

log = logging.getLogger("oxygis.accounts.backends")


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
        right = user.check_password(password)
        if right and self.user_can_authenticate(user) and local_password_allowed(user):
            return user
        return None


def local_password_allowed(user) -> bool:
    """While the directory is on, the local password opens only the accounts of the
    administrators who chose to keep one (break-glass, S7); a directory user never has
    one."""
    if user.source != user.LOCAL and not user.break_glass:
        return False
    if not local_passwords_off():
        return True
    return user.break_glass and user.is_administrator()


def local_passwords_off() -> bool:
    """Is an external sign-in on that replaces local passwords (S7)?"""
    return (
        DirectoryConfig.active() is not None
        or OpenIDConfig.objects.filter(pk=1, enabled=True, passwords_off=True).exists()
    )


class OpenIDBackend(ModelBackend):
    """The backend of sessions opened by the OpenID callback (accounts/oidc.py): it
    checks no credential, so ``authenticate`` never answers."""

    def authenticate(self, request, **credentials):
        return None


class DirectoryBackend(ModelBackend):
    """S7: the tenant's LDAP / Active Directory decides (accounts/directory.py)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None or password is None:
            return None
        config = DirectoryConfig.active()
        if config is None:
            return None
        from . import directory

        try:
            user = directory.authenticate(config, username, password)
        except (directory.DirectoryError, ValueError) as exc:  # ValueError: a DN it sent
            # The person is told the directory did not answer; the reason goes to the log
            # (it may name hosts and accounts), and break-glass administrators can still
            # sign in with their local password.
            log.warning("directory sign-in could not ask the directory: %s", exc)
            if request is not None:
                request.directory_unavailable = True
            return None
        if user is not None and self.user_can_authenticate(user):
            return user
        return None
