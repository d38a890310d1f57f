"""The tenant's support pages, under ``settings/support/``."""

from django.urls import path

from . import support_views as views

urlpatterns = [
    path("", views.support, name="support"),
    path("new/", views.ticket_new, name="support-new"),
    path("<id:ticket_id>/", views.ticket, name="support-ticket"),
    path("<id:ticket_id>/close/", views.ticket_close, name="support-ticket-close"),
    path("grants/<id:grant_id>/<slug:decision>/", views.grant_decide, name="support-grant-decide"),
]

# Outside the settings pages: the e-mailed decision link and the support session's way in
# and out (anonymous where marked, in support_views.py).
session_urlpatterns = [
    path("grant/<str:token>/", views.grant_email_decision, name="support-grant-email"),
    path("enter/<str:token>/", views.support_enter, name="support-enter"),
    path("leave/", views.support_leave, name="support-leave"),
]
