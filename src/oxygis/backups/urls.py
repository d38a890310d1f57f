from django.urls import path

from . import views

urlpatterns = [
    path("", views.backups, name="backups"),
    path("<uuid:backup_id>/restore/", views.restore_side_by_side, name="backup-restore"),
]
