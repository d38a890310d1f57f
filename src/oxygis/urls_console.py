"""URLs of the platform console (``console.<domain>``)."""

from django.urls import path

from oxygis.web import views

urlpatterns = [
    path("", views.console_home, name="console-home"),
    path(".well-known/security.txt", views.security_txt, name="console-security-txt"),
    path(
        ".well-known/security-policy",
        views.security_policy,
        name="console-security-policy",
    ),
]

# A database out of reach, or the password hashers all busy: 503, logged once per episode.
handler500 = "oxygis.web.outages.server_error"
