"""URLs of a tenant's site (``<slug>.<domain>``)."""

from django.urls import include, path

from oxygis.accounts.urls import passkey_patterns, settings_urlpatterns
from oxygis.platform.support_urls import session_urlpatterns as support_session
from oxygis.sales.api import api
from oxygis.sales.urls import company_urlpatterns
from oxygis.web import views

# The API authenticates each call itself (API key, or session + CSRF token) and answers
# 401 in JSON: it is exempt from the sign-in redirect, never from authentication.
api_patterns, api_app, api_namespace = api.urls
for pattern in api_patterns:
    pattern.callback.login_required = False

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/", include("oxygis.accounts.urls")),
    path("accounts/webauthn/", include(passkey_patterns)),
    path("settings/", include(settings_urlpatterns)),
    path("settings/backups/", include("oxygis.backups.urls")),
    path("settings/company/", include(company_urlpatterns)),
    path("settings/support/", include("oxygis.platform.support_urls")),
    path("support/", include(support_session)),
    path("", include("oxygis.portal.urls")),  # before sales: more specific order URLs
    path("sales/", include("oxygis.sales.urls")),
    path("api/v1/", include((api_patterns, api_app), namespace=api_namespace)),
    path("api/v1/<path:rest>", views.api_not_found, name="api-not-found"),
    path(".well-known/security.txt", views.security_txt, name="security-txt"),
    path(".well-known/security-policy", views.security_policy, name="security-policy"),
]

# A database out of reach, or the password hashers all busy: 503, logged once per episode.
handler403 = "oxygis.web.views.permission_denied"
handler500 = "oxygis.web.outages.server_error"
