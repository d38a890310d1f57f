"""URLs of a tenant's site (``<slug>.<domain>``)."""

from django.urls import include, path

from oxygis.accounts.urls import settings_urlpatterns
from oxygis.web import views

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/", include("oxygis.accounts.urls")),
    path("settings/", include(settings_urlpatterns)),
    path(".well-known/security.txt", views.security_txt, name="security-txt"),
    path(".well-known/security-policy", views.security_policy, name="security-policy"),
]
