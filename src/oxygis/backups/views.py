"""The tenant admin's backups page: their backups, and a side-by-side restore (C4).

Backups are catalog rows; every lookup here is narrowed to the request's tenant, so an
id of another tenant's backup is simply not found (404).
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.db.models import Q
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from oxygis.accounts.sudo import recently_authenticated, sudo_required
from oxygis.audit.events import record
from oxygis.core.i18n import format_datetime
from oxygis.tenancy.hosts import site_url, tenant_host

from .errors import BackupError
from .models import Backup, BackupCopy, Restore
from .restore import request_restore


@permission_required("accounts.restore_backups", raise_exception=True)
@sudo_required  # here too, so that the restore button, a POST, finds a fresh sign-in
def backups(request):
    target = request.tenant.id.hex
    rows = Backup.objects.filter(target=target).prefetch_related("copies")
    restores = list(
        Restore.objects.filter(Q(backup__target=target) | Q(tenant=request.tenant))
        .select_related("backup")
        .distinct()[:10]
    )
    for run in restores:
        run.host = tenant_host(run.new_slug) if run.new_slug else ""
        run.url = site_url(run.new_slug) if run.new_slug else ""
    return render(
        request,
        "backups/backups.html",
        {
            "backups": rows,
            "restores": restores,
            "verified": BackupCopy.VERIFIED,
            "restorable": (Backup.GOOD, Backup.DEGRADED),
        },
    )


@require_POST
@permission_required("accounts.restore_backups", raise_exception=True)
def restore_side_by_side(request, backup_id):
    if not recently_authenticated(request):
        # Re-authenticate on the page (a POST cannot be replayed after the prompt).
        return redirect(f"/accounts/reauth/?{urlencode({'next': reverse('backups')})}")
    backup = Backup.objects.filter(pk=backup_id, target=request.tenant.id.hex).first()
    if backup is None:
        raise Http404("no such backup")
    try:
        run = request_restore(
            backup, Restore.SIDE_BY_SIDE, f"{request.user.get_username()} at {request.tenant.slug}"
        )
    except BackupError as exc:
        messages.error(request, str(exc))
        return redirect("backups")
    record(
        "backup.restore_requested",
        request=request,
        target=backup.short_id,
        taken=backup.started_at.isoformat(),
        mode="side by side",
        restore=run.id.hex,
    )
    messages.success(
        request,
        _(
            "Restore of the backup of %(when)s started. It appears below as a new workspace "
            "when done; your current data is not touched."
        )
        % {"when": format_datetime(backup.started_at, "short")},
    )
    return redirect("backups")
