from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.urls import path
from django.views.i18n import JavaScriptCatalog

from . import passkey_views, views

# A tenant's own sign-in methods (S7) and passkeys (S12, the tenant is the relying
# party): not on the console, whose staff sign in with a password and TOTP (C14).
# Not on the console: external sign-in and passkeys (C14: staff use a local password and
# TOTP), and the language choice (the console is in English, for staff).
TENANT_ONLY_ROUTES = ("oidc-start", "oidc-callback", "passkeys", "passkey-remove", "preferences")

urlpatterns = [
    path("login/", views.SignInView.as_view(), name="login"),
    path("logout/", views.SignOutView.as_view(), name="logout"),
    path("oidc/start/", views.oidc_start, name="oidc-start"),
    path("oidc/callback/", views.oidc_callback, name="oidc-callback"),
    path("2fa/verify/", views.twofactor_verify, name="twofactor-verify"),
    path("2fa/setup/", views.twofactor_setup, name="twofactor-setup"),
    path("2fa/qr.svg", views.twofactor_qr, name="twofactor-qr"),
    path("2fa/recovery-codes/", views.recovery_codes_renew, name="recovery-codes-renew"),
    path("2fa/remove/", views.twofactor_remove, name="twofactor-remove"),
    path("reauth/", views.reauth, name="reauth"),
    path("passkeys/", passkey_views.passkey_list, name="passkeys"),
    path("passkeys/<id:passkey_id>/remove/", passkey_views.passkey_remove, name="passkey-remove"),
    path("security/", views.security, name="security"),
    path("preferences/", views.preferences, name="preferences"),
    path("password/", views.password_change, name="password-change"),
    path("email/", views.email_change, name="email-change"),
    path("sessions/<id:session_id>/end/", views.session_end, name="session-end"),
    path("sessions/end-others/", views.sessions_end_others, name="sessions-end-others"),
    path("api-keys/", views.api_keys, name="api-keys"),
    path("api-keys/<id:key_id>/revoke/", views.api_key_revoke, name="api-key-revoke"),
    path("password/reset/", views.PasswordResetView.as_view(), name="password_reset"),
    path(
        "password/reset/sent/",
        auth_views.PasswordResetDoneView.as_view(
            template_name="registration/password_reset_done.html"
        ),
        name="password_reset_done",
    ),
    path(
        "reset/<uidb64>/<token>/",
        views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "reset/done/",
        auth_views.PasswordResetCompleteView.as_view(
            template_name="registration/password_reset_complete.html"
        ),
        name="password_reset_complete",
    ),
    path(
        "invitation/<uidb64>/<token>/",
        views.InvitationAcceptView.as_view(),
        name="invitation-accept",
    ),
]

settings_urlpatterns = [
    path("users/", views.users, name="users"),
    path("users/invite/", views.user_invite, name="user-invite"),
    path("users/<id:user_id>/", views.user_edit, name="user-edit"),
    path("users/<id:user_id>/unlock/", views.user_unlock, name="user-unlock"),
    path("roles/", views.roles, name="roles"),
    path("roles/new/", views.role_edit, name="role-new"),
    path("roles/<id:role_id>/", views.role_edit, name="role-edit"),
    path("policy/", views.policy, name="policy"),
    path("sign-in/", views.signin_methods, name="signin-methods"),
    path(
        "sign-in/directory/",
        views.signin_method_save,
        {"kind": "directory"},
        name="directory-save",
    ),
    path("sign-in/directory/try/", views.directory_try, name="directory-try"),
    path(
        "sign-in/directory/switch/",
        views.signin_method_switch,
        {"kind": "directory"},
        name="directory-switch",
    ),
    path("sign-in/oidc/", views.signin_method_save, {"kind": "oidc"}, name="oidc-save"),
    path(
        "sign-in/oidc/switch/",
        views.signin_method_switch,
        {"kind": "oidc"},
        name="oidc-switch",
    ),
    path("sign-in/break-glass/", views.break_glass, name="break-glass"),
    path("audit/", views.audit_log, name="audit"),
]

# django-otp-webauthn's JSON endpoints, under its namespace (its scripts reverse them).
passkey_patterns = (
    [
        path(
            "registration/begin/",
            passkey_views.RegistrationBegin.as_view(),
            name="credential-registration-begin",
        ),
        path(
            "registration/complete/",
            passkey_views.RegistrationComplete.as_view(),
            name="credential-registration-complete",
        ),
        path(
            "authentication/begin/",
            passkey_views.AuthenticationBegin.as_view(),
            name="credential-authentication-begin",
        ),
        path(
            "authentication/complete/",
            passkey_views.AuthenticationComplete.as_view(),
            name="credential-authentication-complete",
        ),
        path(
            "jsi18n/",
            login_not_required(JavaScriptCatalog.as_view(packages=["django_otp_webauthn"])),
            name="js-i18n-catalog",
        ),
    ],
    "otp_webauthn",
)
