"""URLs of the platform console (``console.<domain>``): staff only (C14)."""

from django.urls import include, path

from oxygis.accounts.urls import TENANT_ONLY_ROUTES
from oxygis.accounts.urls import urlpatterns as accounts_urlpatterns
from oxygis.platform import console_views as views
from oxygis.web import views as web_views

# A staff member's own sign-in, 2FA, password and sessions: the accounts pages, less the
# API keys (the API lives on tenant hosts; a key made here would open nothing).
CONSOLE_ACCOUNT_ROUTES = [
    p
    for p in accounts_urlpatterns
    if p.name not in ("api-keys", "api-key-revoke", *TENANT_ONLY_ROUTES)
]

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/", include(CONSOLE_ACCOUNT_ROUTES)),
    path("tenants/", views.tenants, name="console-tenants"),
    path("tenants/new/", views.tenant_new, name="console-tenant-new"),
    path("tenants/<slug:slug>/", views.tenant, name="console-tenant"),
    path("tenants/<slug:slug>/drop/", views.tenant_drop, name="console-tenant-drop"),
    path(
        "tenants/<slug:slug>/backups/<uuid:backup_id>/restore/",
        views.restore,
        name="console-restore",
    ),
    path(
        "tenants/<slug:slug>/restores/<uuid:restore_id>/rollback/",
        views.rollback,
        name="console-rollback",
    ),
    path("tenants/<slug:slug>/<slug:change>/", views.tenant_change, name="console-tenant-change"),
    path("drops/<id:drop_id>/<slug:decision>/", views.drop_decide, name="console-drop-decide"),
    path("alerts/", views.alerts, name="console-alerts"),
    path("alerts/<id:alert_id>/<slug:decision>/", views.alert_decide, name="console-alert-decide"),
    path("tickets/", views.ticket_list, name="console-tickets"),
    path("tickets/<id:ticket_id>/", views.ticket, name="console-ticket"),
    path("tickets/<id:ticket_id>/close/", views.ticket_close, name="console-ticket-close"),
    path("grants/<id:grant_id>/open/", views.grant_open, name="console-grant-open"),
    path("security/", views.security, name="console-security"),
    path("audit/", views.audit, name="console-audit"),
    path("staff/", views.staff_list, name="console-staff"),
    path("staff/<id:member_id>/<slug:change>/", views.staff_change, name="console-staff-change"),
    path(".well-known/security.txt", web_views.security_txt, name="console-security-txt"),
    path(
        ".well-known/security-policy",
        web_views.security_policy,
        name="console-security-policy",
    ),
]

# A database out of reach, or the password hashers all busy: 503, logged once per episode.
handler403 = "oxygis.web.views.permission_denied"
handler500 = "oxygis.web.outages.server_error"
