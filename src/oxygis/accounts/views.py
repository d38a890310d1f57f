"""Identity pages. Thin: rules and writes live in actions.py, twofactor.py, sessions.py."""

from __future__ import annotations

import json
import logging
from functools import wraps

from axes.models import AccessAttempt
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login, logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required, permission_required
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse, reverse_lazy
from django.utils import translation
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.text import format_lazy
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST
from django_otp import login as otp_login
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from oxygis.audit.events import ACTIONS, record
from oxygis.audit.models import AuditEvent
from oxygis.core import limiter
from oxygis.core.csvexport import csv_download
from oxygis.core.limiter import guards_secrets, secret_was_right
from oxygis.tenancy.credentials import note_revoked
from oxygis.tenancy.models import CredentialEvent
from oxygis.web.views import confirm_page, confirmed

from . import actions, oidc, passkeys, twofactor
from .apikeys import create_key, revoke_key
from .forms import (
    ApiKeyForm,
    AuditFilterForm,
    CodeForm,
    DirectoryForm,
    DirectoryTryForm,
    EmailChangeForm,
    InviteForm,
    OpenIDForm,
    OwnPasswordChangeForm,
    PolicyForm,
    PreferencesForm,
    ReauthForm,
    ResetRequestForm,
    RoleForm,
    SignInForm,
    UserEditForm,
)
from .models import ApiKey, DirectoryConfig, OpenIDConfig, SecurityPolicy, UserSession
from .roles import BUILTIN_ROLES, RIGHTS, rights_held
from .sessions import describe_browser, end_other_sessions, end_session
from .sudo import confirm_password, mark_authenticated, sudo_required
from .tokens import invitation_token_generator, reset_token_generator

log = logging.getLogger("oxygis.accounts.views")


def _next_url(request, default: str = "/") -> str:
    target = request.POST.get("next") or request.GET.get("next") or default
    if url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=True):
        return target
    return default


def _no_store(response):
    response["Cache-Control"] = "no-store"
    return response


# --- sign-in ------------------------------------------------------------------------
@method_decorator(guards_secrets, name="dispatch")
class SignInView(auth_views.LoginView):
    form_class = SignInForm
    template_name = "registration/login.html"

    def form_valid(self, form):
        secret_was_right(self.request)
        return super().form_valid(form)

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "openid": OpenIDConfig.active()}


class SignOutView(auth_views.LogoutView):
    """Sign out here, then at the identity provider when the session came from it
    (RP-initiated logout, S7)."""

    def post(self, request, *args, **kwargs):
        id_token = request.session.get(oidc.ID_TOKEN)
        response = super().post(request, *args, **kwargs)
        config = OpenIDConfig.active() if id_token else None
        url = oidc.logout_url(request, config, id_token) if config is not None else None
        if url is None:
            return response
        # A page of ours that moves on to the provider: a redirect answering the sign-out
        # form would be blocked by our CSP's form-action 'self' (a guard worth keeping).
        context = {"url": url, "label": config.label}
        return _no_store(render(request, "accounts/oidc_signed_out.html", context))


# --- OpenID Connect (S7) ---------------------------------------------------------------------
# Anonymous by design: the person is signing in. The callback checks a secret (the code),
# so each costs the address a token of the shared limiter, refunded on success.
@login_not_required
@never_cache
def oidc_start(request):
    """Off to the identity provider: to sign in, to confirm it is still you
    (``?reauth=1``), or for an administrator's try of the settings (``?trial=1``)."""
    trial = request.GET.get("trial") == "1"
    reauth = request.GET.get("reauth") == "1"
    if trial:
        if not request.user.has_perm("accounts.manage_security_policy"):
            raise PermissionDenied
        config = OpenIDConfig.current()
    else:
        config = OpenIDConfig.active()
    if config is None or (reauth and not request.user.is_authenticated):
        raise Http404
    try:
        url = oidc.start(request, config, next_url=_next_url(request), trial=trial, reauth=reauth)
    except oidc.OpenIDError as exc:
        log.warning("OpenID sign-in could not start: %s", exc)
        messages.error(
            request,
            _(
                "Your identity provider cannot be reached. Try again in a few minutes; if it "
                "lasts, tell your administrator."
            ),
        )
        return redirect("login")
    return redirect(url)


@login_not_required
@never_cache
@guards_secrets(methods=("GET",))
def oidc_callback(request):
    pending = request.session.get(oidc.PENDING) or {}
    config = OpenIDConfig.current() if pending.get("trial") else OpenIDConfig.active()
    if config is None:
        raise Http404
    try:
        outcome = oidc.finish(request, config)
        if outcome.trial:
            if not request.user.has_perm("accounts.manage_security_policy"):
                raise PermissionDenied
            record(
                "oidc.tested",
                request=request,
                target=outcome.username,
                roles=outcome.roles,
                two_factor=outcome.idp_mfa,
            )
            secret_was_right(request)
            return _no_store(render(request, "accounts/oidc_trial.html", {"outcome": outcome}))
        user = oidc.provision(config, outcome)
    except oidc.SignInRefused as exc:
        messages.error(request, str(exc))
        return redirect("login")
    except oidc.OpenIDError as exc:
        log.warning("OpenID sign-in failed: %s", exc)
        messages.error(request, _("Your identity provider cannot be reached. Try again later."))
        return redirect("login")
    secret_was_right(request)
    if outcome.reauth:
        if user.pk != request.user.pk:
            messages.error(request, _("You confirmed as someone else: sign in again."))
            logout(request)
            return redirect("login")
        mark_authenticated(request)
    else:
        login(request, user, backend="oxygis.accounts.backends.OpenIDBackend")
    request.session[oidc.ID_TOKEN] = outcome.id_token
    if outcome.idp_mfa:
        request.session[oidc.IDP_VERIFIED] = True
    return redirect(outcome.next_url)


def _too_many_codes(wait: int) -> str:
    return ngettext(
        "Too many wrong codes: wait %(seconds)s second, then type the code your app shows.",
        "Too many wrong codes: wait %(seconds)s seconds, then type the code your app shows.",
        wait,
    ) % {"seconds": wait}


@never_cache
@guards_secrets
def twofactor_verify(request):
    """Second step of sign-in: a TOTP or recovery code."""
    if request.user.is_verified():
        return redirect(_next_url(request))
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        # Throttled before this code was checked: the app's code is refused whatever it is.
        wait = twofactor.wait_seconds(TOTPDevice.objects.filter(user=request.user, confirmed=True))
        device = twofactor.verify_second_factor(request, request.user, form.cleaned_data["code"])
        if device is not None:
            secret_was_right(request)
            otp_login(request, device)
            mark_authenticated(request)
            return redirect(_next_url(request))
        form.add_error(
            "code",
            _too_many_codes(wait)
            if wait
            else _("This code is not valid. Try the next one from your app."),
        )
    context = {
        "form": form,
        "has_totp": twofactor.has_two_factor(request.user),
        "has_passkey": passkeys.has_passkey(request.user),
    }
    return render(request, "accounts/twofactor_verify.html", context)


@never_cache
@sudo_required
def twofactor_setup(request):
    """Enrol an authenticator app: scan the QR code (or type the secret), then confirm."""
    if twofactor.has_two_factor(request.user):
        return redirect("security")
    device = twofactor.pending_device(request)
    form = CodeForm(request.POST or None)
    form.fields["code"].help_text = _("The 6-digit code your app shows now.")
    if request.method == "POST" and form.is_valid():
        # Throttled before this code was checked: any code, the right one too, is refused.
        wait = twofactor.wait_seconds([device])
        codes = twofactor.confirm_enrolment(request, device, form.cleaned_data["code"])
        if codes is not None:
            otp_login(request, device)
            mark_authenticated(request)
            return _no_store(render(request, "accounts/recovery_codes.html", {"codes": codes}))
        form.add_error(
            "code",
            _too_many_codes(wait)
            if wait
            else _("This code does not match. Check the time on your phone and retry."),
        )
    context = {
        "form": form,
        "secret": twofactor.secret_base32(device),
        "required": twofactor.two_factor_required(request, request.user),
    }
    return _no_store(render(request, "accounts/twofactor_setup.html", context))


@never_cache
@sudo_required
def twofactor_qr(request):
    """The QR code of the device this session is enrolling, as an SVG image (the CSP
    allows 'self'): like the setup page, only to a recent sign-in, of this session."""
    if twofactor.has_two_factor(request.user):
        raise Http404
    svg = twofactor.qr_svg(twofactor.pending_device(request))
    return _no_store(HttpResponse(svg, content_type="image/svg+xml"))


@require_POST
@sudo_required
def recovery_codes_renew(request):
    if not twofactor.has_two_factor(request.user):
        return redirect("security")
    codes = twofactor.new_recovery_codes(request.user)
    record("twofactor.recovery_codes_renewed", request=request, target=request.user.get_username())
    return _no_store(render(request, "accounts/recovery_codes.html", {"codes": codes}))


@require_POST
@sudo_required
def twofactor_remove(request):
    if not confirmed(request):
        return confirm_page(
            request,
            question=_(
                "Turn two-factor authentication off? Your password alone will then open "
                "your account, and your recovery codes stop working."
            ),
            button=_("Turn it off"),
            back=reverse("security"),
        )
    if twofactor.two_factor_required(request, request.user):
        messages.error(request, _("Your workspace requires two-factor authentication."))
    else:
        twofactor.remove_two_factor(request, request.user)
        messages.success(request, _("Two-factor authentication is off."))
    return redirect("security")


@never_cache
@guards_secrets
def reauth(request):
    """Confirm it is still you: the password, or a 2FA code. Each wrong answer counts as a
    failed sign-in (lockout) and costs the address a token of the shared limiter (S12)."""
    form = ReauthForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        secret = form.cleaned_data["secret"]
        user = request.user
        if twofactor.has_two_factor(user) and twofactor.looks_like_a_code(secret):
            ok = twofactor.verify_second_factor(request, user, secret) is not None
        else:
            ok = confirm_password(request, secret)
        if ok:
            secret_was_right(request)
            mark_authenticated(request)
            return redirect(_next_url(request, reverse("security")))
        form.add_error("secret", "That is not your password or a valid code.")
    context = {
        "form": form,
        "next": _next_url(request, ""),
        # A person of the identity provider has no password here: they confirm there.
        "openid": OpenIDConfig.active() if getattr(request.user, "source", "") == "oidc" else None,
    }
    return render(request, "accounts/reauth.html", context)


# --- the user's own preferences -------------------------------------------------------
@never_cache
def preferences(request):
    if not request.user.pk:  # a support session's actor has no account to set
        raise PermissionDenied
    form = PreferencesForm(request.POST or None, instance=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        translation.activate(form.instance.language or translation.get_language())
        messages.success(request, _("Your preferences are saved."))
        return redirect("preferences")
    title = _("Language and time zone")
    return render(request, "web/form_page.html", {"form": form, "title": title})


# --- the user's own security page -------------------------------------------------
@never_cache
def security(request):
    sessions = [
        {
            "row": s,
            "browser": describe_browser(s.user_agent),
            "current": s.session_key == request.session.session_key,
        }
        for s in UserSession.objects.filter(user=request.user)
    ]
    recovery_left = StaticToken.objects.filter(device__user=request.user).count()
    context = {
        "sessions": sessions,
        "has_two_factor": twofactor.has_two_factor(request.user),
        "passkey_count": passkeys.passkeys_of(request.user).count(),
        "recovery_left": recovery_left,
        "two_factor_required": twofactor.two_factor_required(request, request.user),
    }
    return render(request, "accounts/security.html", context)


@never_cache
@guards_secrets
def password_change(request):
    """Always asks for the current password (stricter than the 10-minute sudo rule),
    checked as a sign-in is (lockout, shared limiter)."""
    form = OwnPasswordChangeForm(request, request.POST or None)
    if request.method == "POST" and form.is_valid():
        secret_was_right(request)
        actions.change_password(request, request.user, form.cleaned_data["new_password1"])
        mark_authenticated(request)
        messages.success(request, _("Password changed. Your other sessions were ended."))
        return redirect("security")
    return render(request, "web/form_page.html", {"form": form, "title": _("Change password")})


@never_cache
@sudo_required
def email_change(request):
    form = EmailChangeForm(request.POST or None, initial={"email": request.user.email})
    if request.method == "POST" and form.is_valid():
        try:
            actions.change_email(request, request.user, form.cleaned_data["email"])
        except actions.ActionRefused as exc:
            form.add_error("email", str(exc))
        else:
            messages.success(request, _("E-mail address changed."))
            return redirect("security")
    return render(request, "web/form_page.html", {"form": form, "title": _("Change e-mail")})


@require_POST
def session_end(request, session_id: int):
    session = get_object_or_404(UserSession, pk=session_id, user=request.user)
    end_session(session)
    record("session.revoked", request=request, target=request.user.get_username())
    if session.session_key == request.session.session_key:
        return redirect("login")
    messages.success(request, _("Session ended."))
    return redirect("security")


@require_POST
def sessions_end_others(request):
    ended = end_other_sessions(request.user, keep=request.session.session_key)
    record("session.revoked", request=request, target=request.user.get_username(), count=ended)
    messages.success(
        request,
        ngettext("%(count)s other session ended.", "%(count)s other sessions ended.", ended)
        % {"count": ended},
    )
    return redirect("security")


# --- password reset and invitations -------------------------------------------------
# Anonymous by design (the user cannot sign in yet): Django marks these auth views
# login_not_required, and the subclasses inherit it.
@method_decorator(guards_secrets, name="dispatch")
class PasswordResetView(auth_views.PasswordResetView):
    form_class = ResetRequestForm
    token_generator = reset_token_generator
    template_name = "registration/password_reset_form.html"
    email_template_name = "registration/password_reset_email.txt"
    html_email_template_name = "registration/password_reset_email.html"
    subject_template_name = "registration/password_reset_subject.txt"
    success_url = reverse_lazy("password_reset_done")

    def form_valid(self, form):
        # Same response whether or not the address exists (Django sends to matches only).
        record(
            "password.reset_requested",
            request=self.request,
            target=form.cleaned_data["email"][:150],
        )
        return super().form_valid(form)


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "registration/password_reset_confirm.html"
    success_url = reverse_lazy("password_reset_complete")
    token_generator = reset_token_generator
    audit_action = "password.reset"

    @method_decorator(login_not_required)  # anonymous by design, as Django's own view
    def dispatch(self, *args, **kwargs):
        # The link's token is a secret: an address that guessed too much is refused
        # before it is checked, and each link that does not work costs it a token.
        address = limiter.client_address(self.request)
        try:
            limiter.check(limiter.SECRET_CHECKS, address)
            response = super().dispatch(*args, **kwargs)
            if not self.validlink:
                limiter.take(limiter.SECRET_CHECKS, address)
        except limiter.RateLimited as exc:
            return limiter.limited_response(self.request, exc)
        return response

    def form_valid(self, form):
        note_revoked(CredentialEvent.PASSWORD_CHANGED, self.user.pk)
        response = super().form_valid(form)
        # A reset ends every session of the account, wherever it was opened.
        end_other_sessions(self.user)
        actions.unlock(self.request, self.user.get_username())
        record(
            self.audit_action,
            request=self.request,
            actor=self.user,
            target=self.user.get_username(),
        )
        return response


class InvitationAcceptView(PasswordResetConfirmView):
    template_name = "accounts/invitation_accept.html"
    token_generator = invitation_token_generator
    reset_url_token = "set-password"  # noqa: S105 # nosec B105 # a URL segment, not a secret
    audit_action = "invitation.accepted"
    # A new user had no session to end: the last page welcomes them instead.
    success_url = format_lazy("{}?invited=1", reverse_lazy("password_reset_complete"))


# --- administration: users, roles, policy, audit ------------------------------------
def _locked_usernames() -> set[str]:
    return set(
        AccessAttempt.objects.filter(
            failures_since_start__gte=settings.AXES_FAILURE_LIMIT
        ).values_list("username", flat=True)
    )


@permission_required("accounts.manage_users", raise_exception=True)
def users(request):
    people = get_user_model().objects.prefetch_related("groups").order_by("username")
    locked = _locked_usernames()
    rows = [
        {"user": u, "locked": u.username.lower() in locked or (u.email or "").lower() in locked}
        for u in people
    ]
    return render(request, "accounts/users.html", {"rows": rows})


@permission_required("accounts.manage_users", raise_exception=True)
def user_invite(request):
    form = InviteForm(request.POST or None, actor=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            user = actions.invite_user(request, **form.cleaned_data)
        except actions.ActionRefused as exc:
            form.add_error("email", str(exc))
        else:
            messages.success(request, _("Invitation sent to %(email)s.") % {"email": user.email})
            return redirect("users")
    return render(request, "web/form_page.html", {"form": form, "title": _("Invite a user")})


@permission_required("accounts.manage_users", raise_exception=True)
def user_edit(request, user_id: int):
    person = get_object_or_404(get_user_model(), pk=user_id)
    try:
        actions.check_may_manage(request.user, person)
    except actions.ActionRefused as exc:
        # No form for what cannot be done: yourself, or someone with rights you lack.
        status = 403 if request.method == "POST" else 200
        context = {"person": person, "refused": str(exc)}
        return render(request, "accounts/user_edit.html", context, status=status)
    initial = {"roles": person.groups.all(), "is_active": person.is_active}
    form = UserEditForm(request.POST or None, initial=initial, actor=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            actions.set_roles(request, person, form.cleaned_data["roles"])
            actions.set_active(request, person, form.cleaned_data["is_active"])
        except actions.ActionRefused as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, _("%(name)s updated.") % {"name": person.username})
            return redirect("users")
    return render(request, "accounts/user_edit.html", {"form": form, "person": person})


@require_POST
@permission_required("accounts.manage_users", raise_exception=True)
def user_unlock(request, user_id: int):
    person = get_object_or_404(get_user_model(), pk=user_id)
    for name in {person.username, person.email}:
        if name:
            actions.unlock(request, name)
    messages.success(request, _("%(name)s can sign in again.") % {"name": person.username})
    return redirect("users")


@permission_required("accounts.manage_roles", raise_exception=True)
def roles(request):
    groups = list(Group.objects.prefetch_related("permissions__content_type").order_by("name"))
    for group in groups:
        labels = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}
        group.builtin = group.name in BUILTIN_ROLES
        group.summary = [str(RIGHTS[key].label) for key in rights_held(labels)]
    return render(request, "accounts/roles.html", {"roles": groups})


@permission_required("accounts.manage_roles", raise_exception=True)
def role_edit(request, role_id: int | None = None):
    """A custom role's rights by feature; a built-in role read-only, to copy."""
    role = get_object_or_404(Group, pk=role_id) if role_id else None
    builtin = role is not None and role.name in BUILTIN_ROLES
    if builtin and request.method == "POST":
        raise PermissionDenied  # built-in roles are defined in code (roles.py)
    copy_of = None
    if role is None and request.GET.get("copy", "").isdigit():
        copy_of = Group.objects.filter(pk=int(request.GET["copy"])).first()
    initial = {"name": _("Copy of %(role)s") % {"role": copy_of.name}} if copy_of else None
    form = RoleForm(
        request.POST or None,
        instance=role,
        actor=request.user,
        copy_of=copy_of,
        read_only=builtin,
        initial=initial,
    )
    if request.method == "POST" and form.is_valid():
        try:
            actions.save_role(request, form)
        except actions.ActionRefused as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, _("Role saved."))
            return redirect("roles")
    context = {"form": form, "role": role, "builtin": builtin}
    return render(request, "accounts/role.html", context, status=422 if form.errors else 200)


@permission_required("accounts.manage_security_policy", raise_exception=True)
def policy(request):
    form = PolicyForm(request.POST or None, instance=SecurityPolicy.current())
    if request.method == "POST" and form.is_valid():
        actions.save_policy(request, form)
        messages.success(request, _("Security policy saved."))
        return redirect("policy")
    return render(request, "web/form_page.html", {"form": form, "title": _("Security policy")})


# --- sign-in methods (S7) ------------------------------------------------------------------
SIGN_IN_FORMS = {"directory": DirectoryForm, "oidc": OpenIDForm}
SIGN_IN_MODELS = {"directory": DirectoryConfig, "oidc": OpenIDConfig}


def _signin_methods_page(request, *, forms=None, try_form=None, steps=None, status=200):
    from oxygis.tenancy.hosts import site_url

    configs = {kind: model.current() for kind, model in SIGN_IN_MODELS.items()}
    forms = forms or {}
    context = {
        "directory": configs["directory"],
        "openid": configs["oidc"],
        "directory_form": forms.get("directory")
        or DirectoryForm(instance=configs["directory"] or DirectoryConfig()),
        "openid_form": forms.get("oidc") or OpenIDForm(instance=configs["oidc"] or OpenIDConfig()),
        "try_form": try_form or DirectoryTryForm(),
        "steps": steps,
        "redirect_uri": site_url(request.tenant.slug, "/accounts/oidc/callback/"),
        "post_logout_uri": site_url(request.tenant.slug, "/accounts/login/"),
        "break_glass_admins": [
            u
            for u in get_user_model().objects.filter(break_glass=True, is_active=True)
            if u.is_administrator()
        ],
    }
    return render(request, "accounts/signin_methods.html", context, status=status)


@never_cache
@permission_required("accounts.manage_security_policy", raise_exception=True)
@sudo_required
def signin_methods(request):
    """The tenant's sign-in methods: the directory's and the identity provider's settings,
    a try of each, their switches, and who keeps a break-glass password."""
    return _signin_methods_page(request)


def _posted_only(view):
    """For the page's buttons: a GET (after a re-authentication) goes back to the page."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.method != "POST":
            return redirect("signin-methods")
        return view(request, *args, **kwargs)

    return wrapper


@permission_required("accounts.manage_security_policy", raise_exception=True)
@sudo_required
@_posted_only
def signin_method_save(request, kind: str):
    model = SIGN_IN_MODELS[kind]
    form = SIGN_IN_FORMS[kind](request.POST, instance=model.current() or model())
    if not form.is_valid():
        return _signin_methods_page(request, forms={kind: form}, status=400)
    actions.save_sign_in_method(request, kind, form)
    messages.success(request, _("Settings saved. Try them with a user before switching on."))
    return redirect("signin-methods")


@permission_required("accounts.manage_security_policy", raise_exception=True)
@sudo_required
@_posted_only
def signin_method_switch(request, kind: str):
    on = request.POST.get("on") == "1"
    try:
        actions.switch_sign_in_method(request, kind, on)
    except actions.ActionRefused as exc:
        messages.error(request, str(exc))
    else:
        done = {
            ("directory", True): _("Directory sign-in is on."),
            ("directory", False): _("Directory sign-in is off."),
            ("oidc", True): _("Identity provider sign-in is on."),
            ("oidc", False): _("Identity provider sign-in is off."),
        }
        messages.success(request, done["directory" if kind == "directory" else "oidc", on])
    return redirect("signin-methods")


@permission_required("accounts.manage_security_policy", raise_exception=True)
@sudo_required
@_posted_only
@guards_secrets  # it checks a directory password: as costly for a guesser as a sign-in
def directory_try(request):
    config = DirectoryConfig.current()
    if config is None:
        messages.error(request, _("Fill in the settings first."))
        return redirect("signin-methods")
    form = DirectoryTryForm(request.POST)
    if not form.is_valid():
        return _signin_methods_page(request, try_form=form, status=400)
    from .directory import try_configuration

    username = form.cleaned_data["username"]
    steps = try_configuration(config, username, form.cleaned_data["password"])
    ok = all(step.ok for step in steps)
    record(
        "directory.tested",
        request=request,
        target=username,
        ok=ok,
        failed=[s.label for s in steps if not s.ok],
    )
    return _signin_methods_page(
        request, try_form=DirectoryTryForm(initial={"username": username}), steps=steps
    )


@permission_required("accounts.manage_security_policy", raise_exception=True)
@sudo_required
@_posted_only
def break_glass(request):
    keep = request.POST.get("keep") == "1"
    try:
        actions.set_break_glass(request, keep)
    except actions.ActionRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            _("You keep your local password as break-glass access.")
            if keep
            else _("You gave up break-glass access."),
        )
    return redirect("signin-methods")


@permission_required("audit.view_auditevent", raise_exception=True)
def audit_log(request):
    """The tenant's audit trail, filtered by actor, action and dates; as CSV on request."""
    return audit_page(request)


def audit_page(request):
    """The audit trail of the bound database (a tenant's, or the platform's on the
    console): the caller checks the right to read it."""
    form = AuditFilterForm(request.GET or None)
    events = form.filtered(AuditEvent.objects.all())
    if request.GET.get("format") == "csv":
        return csv_download(
            "audit-log.csv",
            ("seq", "at_utc", "action", "event", "actor", "target", "ip", "details"),
            (
                (
                    e.seq,
                    f"{e.at:%Y-%m-%d %H:%M:%S}",
                    e.action,
                    ACTIONS.get(e.action, e.action),
                    e.actor,
                    e.target,
                    e.ip or "",
                    json.dumps(e.details, ensure_ascii=False),
                )
                for e in events.iterator(chunk_size=2000)
            ),
        )
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "accounts/audit.html",
        {"page": page, "labels": ACTIONS, "form": form, "query": query.urlencode()},
    )


# --- API keys ------------------------------------------------------------------------
@never_cache
@sudo_required
def api_keys(request):
    """List, create and revoke the user's own API keys (a new token is shown once)."""
    form = ApiKeyForm(request.POST or None)
    token = None
    if request.method == "POST" and form.is_valid():
        _key, token = create_key(request, **form.cleaned_data)
        form = ApiKeyForm()
    keys = ApiKey.objects.filter(user=request.user)
    context = {
        "form": form,
        "token": token,
        "keys": keys,
        "two_factor_required": twofactor.two_factor_required(request, request.user),
    }
    return _no_store(render(request, "accounts/api_keys.html", context))


@require_POST
@sudo_required
def api_key_revoke(request, key_id: int):
    key = get_object_or_404(ApiKey, pk=key_id, user=request.user)
    if not confirmed(request):
        return confirm_page(
            request,
            question=_("Revoke the API key “%(name)s”? Programs using it stop working.")
            % {"name": key.name},
            button=_("Revoke the key"),
            back=reverse("api-keys"),
        )
    revoke_key(request, key)
    messages.success(request, _("API key revoked."))
    return redirect("api-keys")
