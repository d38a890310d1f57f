"""The passkey ceremonies (django-otp-webauthn's JSON views) with Oxygis's guards on top
(accounts/passkeys.py says what each stops), and the page that lists them."""

from __future__ import annotations

import json

from django.contrib.auth.decorators import login_not_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST
from django_otp_webauthn import exceptions
from django_otp_webauthn import views as webauthn

from oxygis.core.limiter import guards_secrets, secret_was_right

from . import passkeys
from .sudo import recently_authenticated, sudo_required


class ReauthenticationRequired(exceptions.OTPWebAuthnApiError):
    status_code = 403
    default_detail = "Confirm it is you first: reload the page and sign in again."
    default_code = "reauthentication_required"


class _RecentSignInOnly:
    def check_can_register(self):
        if not recently_authenticated(self.request):
            raise ReauthenticationRequired()


class RegistrationBegin(_RecentSignInOnly, webauthn.BeginCredentialRegistrationView):
    pass


class RegistrationComplete(_RecentSignInOnly, webauthn.CompleteCredentialRegistrationView):
    def post(self, *args, **kwargs):
        response = super().post(*args, **kwargs)
        passkeys.note_added(self.request, json.loads(response.content)["id"])
        return response


# Anonymous by design (passwordless sign-in); each completion is a secret check.
@method_decorator(login_not_required, name="dispatch")
class AuthenticationBegin(webauthn.BeginCredentialAuthenticationView):
    pass


class SignInElsewhereFirst(exceptions.OTPWebAuthnApiError):
    status_code = 403
    default_detail = (
        "Sign in through your company directory or identity provider first: your passkey "
        "is then your second factor."
    )
    default_code = "sign_in_elsewhere_first"


@method_decorator(login_not_required, name="dispatch")
@method_decorator(guards_secrets, name="dispatch")
class AuthenticationComplete(webauthn.CompleteCredentialAuthenticationView):
    def check_device_usable(self, device):
        super().check_device_usable(device)
        if device.user.source != device.user.LOCAL and not self.request.user.is_authenticated:
            # The directory or provider decides, at each sign-in, whether this person may
            # still come in (S7): a passkey alone would skip that question.
            raise SignInElsewhereFirst()

    def complete_auth(self, device):
        super().complete_auth(device)
        secret_was_right(self.request)


@never_cache
@sudo_required
def passkey_list(request):
    return render(
        request, "accounts/passkeys.html", {"passkeys": passkeys.passkeys_of(request.user)}
    )


@require_POST
@sudo_required
def passkey_remove(request, passkey_id: int):
    from django.contrib import messages

    from oxygis.web.views import confirm_page, confirmed

    if not confirmed(request):
        return confirm_page(
            request,
            question=_("Remove this passkey? It will no longer open your account."),
            button=_("Remove the passkey"),
            back=reverse("passkeys"),
        )
    try:
        if passkeys.remove(request, passkey_id):
            messages.success(request, _("Passkey removed."))
    except passkeys.LastSecondFactor as exc:
        messages.error(request, str(exc))
    return redirect("passkeys")
