"""What the directory (accounts/directory.py) and the identity provider
(accounts/oidc.py) share (S7): the secret sealed in their settings, and how a person
they vouch for becomes, or stays, a local user."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils.translation import gettext as _

from oxygis.audit.events import record
from oxygis.tenancy.credentials import note_revoked
from oxygis.tenancy.models import CredentialEvent
from oxygis.tenancy.sealing import SealError, unseal


def open_secret(sealed: str, what: str, error: type[Exception]) -> str:
    """The clear text of a sealed setting, or ``error`` saying what to do."""
    if not sealed:
        raise error(_("no %(what)s is set") % {"what": what})
    try:
        return unseal(sealed)
    except SealError:
        raise error(
            _(
                "the %(what)s cannot be opened here (the service's secret key changed): "
                "enter it again"
            )
            % {"what": what}
        ) from None


def snapshot(user) -> dict:
    """What a sign-in may change of a user, as the audit trail shows it."""
    if user.pk is None:
        return {}
    return {
        "email": user.email,
        "active": user.is_active,
        "roles": sorted(user.groups.values_list("name", flat=True)),
    }


def save_person(
    user, *, kind: str, roles: list[str], before: dict, linked: bool = False, **details
):
    """Save ``user`` as the directory or provider (``kind``: "directory" or "oidc")
    described them, with exactly ``roles``, and no local password (unless they are a
    break-glass administrator); audited as created, linked (a local account taken over)
    or updated. Raises IntegrityError when the e-mail address is another account's."""
    created = user.pk is None
    if created:
        user.set_unusable_password()  # the directory or provider holds it, not us
    elif user.has_usable_password() and not user.break_glass:
        # Once only: a new unusable password each time would end the person's other
        # sessions (the session hash covers the password field). Noted in the catalog,
        # so that a restore does not bring the local password back (C4).
        note_revoked(CredentialEvent.PASSWORD_CHANGED, user.pk)
        user.set_unusable_password()
    groups = list(Group.objects.filter(name__in=roles))
    with transaction.atomic(using=get_user_model().objects.db):
        user.save()
        user.groups.set(groups)
        after = snapshot(user)
        if created or linked:
            action = "user_created" if created else "user_linked"
            record(f"{kind}.{action}", actor=None, target=user.username, **details, **after)
        elif after != before:
            record(
                f"{kind}.user_updated", actor=None, target=user.username, before=before, after=after
            )
    return user
