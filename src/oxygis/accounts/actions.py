"""Identity actions: every write to users, roles and the policy goes through here, audited.
Views and commands stay thin and call these."""

from __future__ import annotations

from axes.utils import reset as axes_reset
from django.contrib.auth import get_user_model, update_session_auth_hash
from django.contrib.auth.models import Group, Permission
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.translation import gettext as _

from oxygis.audit.events import record
from oxygis.core.mail import send_templated
from oxygis.tenancy.credentials import note_revoked
from oxygis.tenancy.hosts import site_url
from oxygis.tenancy.models import CredentialEvent

from .roles import ADMINISTRATOR
from .sessions import end_other_sessions
from .tokens import invitation_token_generator


class ActionRefused(Exception):
    """A refused action; the message is for the person who asked."""


# --- who may grant what (S13) -----------------------------------------------------------
def _label(permission) -> str:
    return f"{permission.content_type.app_label}.{permission.codename}"


def rights_as_permissions(user):
    """The permissions ``user`` holds, through roles or directly (an owner: all)."""
    if user.is_superuser:
        return Permission.objects.all()
    return Permission.objects.filter(Q(user=user) | Q(group__user=user)).distinct()


def rights_of(user) -> set[str]:
    return {_label(p) for p in rights_as_permissions(user).select_related("content_type")}


def rights_of_roles(roles) -> set[str]:
    found = Permission.objects.filter(group__in=list(roles)).select_related("content_type")
    return {_label(p) for p in found}


def grantable_roles(actor) -> list:
    """The roles ``actor`` may give: those holding no right the actor lacks."""
    roles = Group.objects.prefetch_related("permissions__content_type").order_by("name")
    if actor.is_superuser:
        return list(roles)
    mine = rights_of(actor)
    return [r for r in roles if {_label(p) for p in r.permissions.all()} <= mine]


def _refuse_rights_beyond(actor, rights: set[str], what: str) -> None:
    """Threat: privilege escalation. Nobody grants a right they do not hold themselves."""
    if actor.is_superuser:
        return
    missing = sorted(rights - rights_of(actor))
    if missing:
        raise ActionRefused(
            _("You cannot %(what)s: it gives rights you do not have yourself (%(rights)s).")
            % {
                "what": what,
                "rights": ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else ""),
            }
        )


def check_may_manage(actor, person) -> None:
    """May ``actor`` change ``person``'s roles or access? Not their own, and not someone
    holding a right the actor lacks (who could otherwise demote or lock out a superior,
    or give them back rights the actor never had)."""
    if person.pk == actor.pk:
        raise ActionRefused(
            _("You cannot change your own roles or access: ask another administrator.")
        )
    if person.is_superuser and not actor.is_superuser:
        raise ActionRefused(
            _("%(name)s is a workspace owner: you cannot change them.")
            % {"name": person.get_username()}
        )
    _refuse_rights_beyond(
        actor, rights_of(person), _("change %(name)s") % {"name": person.get_username()}
    )


def _administrators():
    return (
        get_user_model()
        .objects.filter(Q(is_superuser=True) | Q(groups__name=ADMINISTRATOR), is_active=True)
        .distinct()
    )


def change_password(request, user, new_password: str) -> None:
    """Set a new password (validated), keep this session, end every other one."""
    validate_password(new_password, user)
    note_revoked(CredentialEvent.PASSWORD_CHANGED, user.pk)
    user.set_password(new_password)
    user.save(update_fields=["password"])
    update_session_auth_hash(request, user)
    end_other_sessions(user, keep=request.session.session_key)
    record("password.changed", request=request, target=user.get_username())


def change_email(request, user, email: str) -> None:
    User = get_user_model()
    email = email.strip()
    if User.objects.filter(email__iexact=email).exclude(pk=user.pk).exists():
        raise ActionRefused(_("Another user already has this e-mail address."))
    old = user.email
    user.email = email
    user.save(update_fields=["email"])
    record("email.changed", request=request, target=user.get_username(), old=old, new=email)


def invite_user(request, *, email: str, first_name: str, last_name: str, roles) -> object:
    """Create an inactive-password user and e-mail them a link to set their password."""
    User = get_user_model()
    email = email.strip()
    _refuse_rights_beyond(request.user, rights_of_roles(roles), _("give these roles"))
    if User.objects.filter(email__iexact=email).exists():
        raise ActionRefused(_("A user with this e-mail address already exists."))
    username = email.lower()
    if User.objects.filter(username__iexact=username).exists():
        raise ActionRefused(_("A user with this name already exists."))
    with transaction.atomic(using=User.objects.db):
        user = User(username=username, email=email, first_name=first_name, last_name=last_name)
        user.set_unusable_password()  # nobody knows a password until the invitee sets one
        user.save()
        user.groups.set(roles)
    # The tenant's canonical address, never the request's Host header (link poisoning).
    link = site_url(
        request.tenant.slug,
        reverse(
            "invitation-accept",
            kwargs={
                "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
                "token": invitation_token_generator.make_token(user),
            },
        ),
    )
    send_templated(
        email,
        f"You are invited to {request.tenant.name} on Oxygis",
        "accounts/email/invitation",
        {"user": user, "link": link, "inviter": request.user, "tenant": request.tenant},
    )
    record("user.invited", request=request, target=username, roles=sorted(r.name for r in roles))
    return user


def set_roles(request, user, roles) -> None:
    before = sorted(user.groups.values_list("name", flat=True))
    after = sorted(r.name for r in roles)
    if before == after:
        return
    check_may_manage(request.user, user)
    _refuse_rights_beyond(
        request.user,
        rights_of_roles(roles),
        _("give %(name)s these roles") % {"name": user.get_username()},
    )
    if ADMINISTRATOR in before and ADMINISTRATOR not in after:
        _keep_an_administrator(user)
    user.groups.set(roles)
    record(
        "user.roles_changed",
        request=request,
        target=user.get_username(),
        before=before,
        after=after,
    )


def set_active(request, user, active: bool) -> None:
    if user.is_active == active:
        return
    if user.pk == request.user.pk:
        raise ActionRefused(_("You cannot deactivate yourself."))
    check_may_manage(request.user, user)
    if not active:
        _keep_an_administrator(user)
    note_revoked(
        CredentialEvent.USER_REACTIVATED if active else CredentialEvent.USER_DEACTIVATED, user.pk
    )
    user.is_active = active
    user.disabled_by_directory = False  # an administrator's decision, from now on
    user.save(update_fields=["is_active", "disabled_by_directory"])
    if not active:
        end_other_sessions(user)
    record(
        "user.activated" if active else "user.deactivated",
        request=request,
        target=user.get_username(),
    )


def _keep_an_administrator(user) -> None:
    if not _administrators().exclude(pk=user.pk).exists():
        raise ActionRefused(_("This is the last administrator: make someone else one first."))


def unlock(request, username: str) -> int:
    """Lift a lockout for ``username`` (all addresses); returns attempts cleared."""
    cleared = axes_reset(username=username.strip().lower())
    record("login.unlocked", request=request, target=username)
    return cleared


def save_role(request, form) -> Group:
    created = form.instance.pk is None
    if not created:
        _refuse_rights_beyond(request.user, rights_of_roles([form.instance]), _("change this role"))
    _refuse_rights_beyond(
        request.user, {_label(p) for p in form.cleaned_data["permissions"]}, _("save this role")
    )
    role = form.save()
    record(
        "role.created" if created else "role.changed",
        request=request,
        target=role.name,
        permissions=sorted(role.permissions.values_list("codename", flat=True)),
    )
    return role


def save_policy(request, form) -> None:
    before = {f: str(form.initial.get(f)) for f in form.changed_data}
    policy = form.save()
    record(
        "policy.changed",
        request=request,
        before=before,
        after={f: str(getattr(policy, f)) for f in form.changed_data},
    )


def set_password_by_operator(user, password: str) -> None:
    """The platform operator's path (CLI); validated like every other path (C13)."""
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise ActionRefused(" ".join(exc.messages)) from None
    note_revoked(CredentialEvent.PASSWORD_CHANGED, user.pk)
    user.set_password(password)
    user.save(update_fields=["password"])
    end_other_sessions(user)
    record("password.set_by_operator", actor=None, target=user.get_username())


# --- external sign-in: the directory and the identity provider (S7) -------------------------
def _sign_in_method(kind: str):
    """(model, secret field, how to seal it, how to check it answers) of ``kind``."""
    from . import directory, oidc
    from .models import DirectoryConfig, OpenIDConfig

    def directory_answers(config):
        with directory.Directory(config):
            pass

    def provider_answers(config):
        oidc.signing_keys(oidc.discover(config, refresh=True), refresh=True)
        oidc.client_secret(config)

    if kind == "directory":
        return (
            DirectoryConfig,
            "bind_password",
            directory.set_bind_password,
            directory_answers,
            directory.DirectoryError,
        )
    return OpenIDConfig, "client_secret", oidc.set_client_secret, provider_answers, oidc.OpenIDError


def save_sign_in_method(request, kind: str, form) -> None:
    """Save the settings of the directory or identity provider (``kind``: "directory" or
    "oidc"); its secret sealed, never logged."""
    _, secret_field, set_secret, _, _ = _sign_in_method(kind)
    config = form.save(commit=False)
    config.pk = 1
    changed = [f for f in form.changed_data if f != secret_field]
    if form.cleaned_data.get(secret_field):
        set_secret(config, form.cleaned_data[secret_field])
        changed.append(secret_field)
    with transaction.atomic(using=config._meta.model.objects.db):
        config.save()
        record(f"{kind}.configured", request=request, changed=sorted(changed), at=str(config))


def switch_sign_in_method(request, kind: str, on: bool) -> None:
    """Switch the directory or identity provider on (once it answers) or off."""
    model, _form, _save, answers, error = _sign_in_method(kind)
    config = model.current()
    if config is None:
        raise ActionRefused(_("Fill in the settings first."))
    if on:
        try:
            answers(config)
        except error as exc:
            raise ActionRefused(_("It cannot be used: %(problem)s.") % {"problem": exc}) from None
    if config.enabled == on:
        return
    with transaction.atomic(using=model.objects.db):
        config.enabled = on
        config.save(update_fields=["enabled", "updated_at"])
        record(f"{kind}.switched_{'on' if on else 'off'}", request=request, at=str(config))


def set_break_glass(request, keep: bool) -> None:
    """An administrator keeps (or gives up) their local password as a way in while the
    directory or identity provider is down (S7)."""
    from .backends import local_passwords_off

    user = request.user
    if keep:
        if not user.is_administrator():
            raise ActionRefused(_("Only administrators may keep a break-glass password."))
        if user.source != user.LOCAL or not user.has_usable_password():
            raise ActionRefused(
                _(
                    "Your account comes from the directory: break-glass access is for an "
                    "administrator account with a local password."
                )
            )
    elif local_passwords_off() and user.source == user.LOCAL:
        raise ActionRefused(
            _(
                "Local passwords are off and your account has no other way in: without "
                "break-glass access you could no longer sign in."
            )
        )
    if user.break_glass == keep:
        return
    with transaction.atomic(using=get_user_model().objects.db):
        user.break_glass = keep
        if not keep and user.source != user.LOCAL:
            user.set_unusable_password()  # the directory holds it from now on
        user.save(update_fields=["break_glass", "password"])
        record("break_glass.kept" if keep else "break_glass.given_up", request=request)
