"""The platform console (``console.<domain>``): staff only, 2FA first, each page behind a
right of the staff member's role (platform/staff.py). Thin: every change goes through
the actions the ``oxygis`` command uses too (lifecycle, backups' restore, tickets,
grants, staff), each in the platform's audit log.
"""

from __future__ import annotations

from functools import wraps

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from oxygis.accounts.views import audit_page
from oxygis.backups import alerts as alert_actions
from oxygis.backups.errors import BackupError
from oxygis.backups.models import Alert, Backup, Restore
from oxygis.backups.restore import request_restore, roll_back
from oxygis.tenancy.hosts import site_url
from oxygis.tenancy.models import Plan, Tenant
from oxygis.tenancy.tenants import TenantError

from . import disclosure, grants, lifecycle, staff, tickets
from .feedback import told
from .models import (
    AccessGrant,
    SecurityReport,
    StaffMember,
    SupportPolicy,
    TenantDropRequest,
    Ticket,
)
from .staff import StaffError


def staff_right(right: str):
    """The view needs ``right`` (by the staff member's role); refused with 403 else."""

    def decorate(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not staff.may(getattr(request, "staff", None), right):
                raise PermissionDenied(f"your role may not do this ({right})")
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


def _tenant(slug: str) -> Tenant:
    tenant = Tenant.objects.select_related("plan", "database_server").filter(slug=slug).first()
    if tenant is None:
        raise Http404("no such tenant")
    return tenant


def _by(request) -> str:
    return f"{request.user.get_username()} (console)"


# --- home -------------------------------------------------------------------------------
def home(request):
    member = request.staff
    context = {
        "member": member,
        "rights": staff.RIGHTS[member.role] if member else set(),
        "open_tickets": Ticket.objects.exclude(state=Ticket.CLOSED).count(),
        "open_alerts": alert_actions.open_alerts().count(),
        "tenants": Tenant.objects.count(),
        "my_grants": AccessGrant.objects.select_related("tenant", "ticket")
        .filter(staff=member, state__in=(AccessGrant.REQUESTED, AccessGrant.ACTIVE))
        .order_by("-requested_at")
        if member
        else [],
        "pending_drops": TenantDropRequest.objects.filter(state=TenantDropRequest.PENDING),
    }
    return render(request, "console/home.html", context)


# --- tenants ----------------------------------------------------------------------------
def _last_good_backups(tenants) -> dict:
    targets = [t.id.hex for t in tenants]
    last = {}
    for backup in Backup.objects.good().filter(target__in=targets).order_by("started_at"):
        last[backup.target] = backup.started_at
    return last


def _concerns(tenant, key: str) -> bool:
    """Is an alert (by its key) about ``tenant``? Keys name a tenant by id or slug."""
    return tenant.id.hex in key or f":{tenant.slug}" in key


def _alert_counts(tenants) -> dict:
    keys = list(alert_actions.open_alerts().values_list("key", flat=True))
    return {t.slug: sum(1 for k in keys if _concerns(t, k)) for t in tenants}


@staff_right("tenants.view")
def tenants(request):
    query = (request.GET.get("q") or "").strip()[:100]
    rows = Tenant.objects.select_related("plan", "database_server").order_by("slug")
    if query:
        rows = rows.filter(Q(slug__icontains=query) | Q(name__icontains=query))
    page = Paginator(rows, 50).get_page(request.GET.get("page"))
    last = _last_good_backups(page)
    counts = _alert_counts(page)
    items = [
        {"tenant": t, "last_good": last.get(t.id.hex), "alerts": counts.get(t.slug, 0)}
        for t in page
    ]
    return render(request, "console/tenants.html", {"page": page, "items": items, "query": query})


class TenantCreateForm(forms.Form):
    slug = forms.CharField(max_length=40)
    name = forms.CharField(max_length=200)
    plan = forms.ChoiceField(choices=Plan.CODES)
    admin_email = forms.EmailField(label="Administrator's e-mail", required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The real address, with this platform's domain and port (not a placeholder).
        self.fields["slug"].help_text = (
            "Lower-case letters, digits and hyphens; the workspace's address becomes "
            f"{site_url('SLUG')}"
        )


@staff_right("tenants.manage")
def tenant_new(request):
    form = TenantCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            made = lifecycle.create(by=request.user, request=request, **form.cleaned_data)
        except TenantError as exc:
            form.add_error(None, str(exc))
        else:
            return render(
                request,
                "console/tenant_created.html",
                {"made": made, "url": site_url(made.tenant.slug)},
            )
    return render(request, "web/form_page.html", {"form": form, "title": "New tenant"})


@staff_right("tenants.view")
def tenant(request, slug):
    item = _tenant(slug)
    member = request.staff
    backups = list(Backup.objects.filter(target=item.id.hex).prefetch_related("copies")[:30])
    restores = list(
        Restore.objects.filter(Q(tenant=item) | Q(backup__target=item.id.hex))
        .select_related("backup")
        .distinct()
        .order_by("-requested_at")[:10]
    )
    context = {
        "item": item,
        "plans": Plan.CODES,
        "backups": backups,
        "restores": restores,
        "restorable": (Backup.GOOD, Backup.DEGRADED),
        "alerts": [a for a in alert_actions.open_alerts() if _concerns(item, a.key)],
        "tickets": Ticket.objects.filter(tenant=item).order_by("-updated_at")[:20],
        "drop": TenantDropRequest.objects.filter(
            tenant_id_value=item.pk, state=TenantDropRequest.PENDING
        ).first(),
        "can_manage": staff.may(member, "tenants.manage"),
        "can_backups": staff.may(member, "backups.manage"),
        "can_drop": staff.may(member, "tenants.drop"),
        "url": site_url(item.slug),
        "live": Restore.LIVE,
        "done": Restore.DONE,
    }
    return render(request, "console/tenant.html", context)


@require_POST
@staff_right("tenants.manage")
def tenant_change(request, slug, change):
    item = _tenant(slug)
    if change not in ("suspend", "resume", "plan"):
        raise Http404("no such change")
    with told(request, f"{item.slug}: {change} done."):
        if change == "suspend":
            lifecycle.suspend(item, by=request.user, request=request)
        elif change == "resume":
            lifecycle.resume(item, by=request.user, request=request)
        else:
            lifecycle.change_plan(
                item, request.POST.get("plan", ""), by=request.user, request=request
            )
    return redirect("console-tenant", slug=item.slug)


@require_POST
@staff_right("tenants.drop")
def tenant_drop(request, slug):
    item = _tenant(slug)
    with told(request, f"Dropping {item.slug} now waits for a second administrator's approval."):
        lifecycle.request_drop(
            item, member=request.staff, typed=request.POST.get("confirm", ""), request=request
        )
    return redirect("console-tenant", slug=item.slug)


@require_POST
@staff_right("tenants.drop")
def drop_decide(request, drop_id, decision):
    asked = TenantDropRequest.objects.filter(pk=drop_id).first()
    if asked is None or decision not in ("approve", "cancel"):
        raise Http404("no such drop request")
    try:
        if decision == "approve":
            lifecycle.approve_drop(
                asked, member=request.staff, typed=request.POST.get("confirm", ""), request=request
            )
            messages.success(request, f"Tenant {asked.tenant_slug} dropped.")
            return redirect("console-tenants")
        lifecycle.cancel_drop(asked, member=request.staff, request=request)
        messages.success(request, f"Dropping {asked.tenant_slug} cancelled.")
    except TenantError as exc:
        messages.error(request, str(exc))
    return redirect("console-tenant", slug=asked.tenant_slug)


# --- backups and restores ---------------------------------------------------------------
@require_POST
@staff_right("backups.manage")
def restore(request, slug, backup_id):
    item = _tenant(slug)
    backup = Backup.objects.filter(pk=backup_id, target=item.id.hex).first()
    if backup is None:
        raise Http404("no such backup")
    mode = request.POST.get("mode")
    if mode not in (Restore.SIDE_BY_SIDE, Restore.LIVE):
        raise Http404("no such restore mode")
    if mode == Restore.LIVE and request.POST.get("confirm", "").strip() != item.slug:
        messages.error(request, f"Type {item.slug} to confirm a restore onto the live database.")
        return redirect("console-tenant", slug=item.slug)
    try:
        run = request_restore(backup, mode, _by(request))
    except BackupError as exc:
        messages.error(request, str(exc))
        return redirect("console-tenant", slug=item.slug)
    staff.platform_record(
        "backup.restore_requested",
        by=request.user,
        request=request,
        target=item.slug,
        backup=backup.short_id,
        mode=mode,
        restore=run.id.hex,
    )
    messages.success(request, f"Restore queued ({run.get_mode_display()}); the worker runs it.")
    return redirect("console-tenant", slug=item.slug)


@require_POST
@staff_right("backups.manage")
def rollback(request, slug, restore_id):
    item = _tenant(slug)
    run = Restore.objects.filter(pk=restore_id, tenant=item).first()
    if run is None:
        raise Http404("no such restore")
    if request.POST.get("confirm", "").strip() != item.slug:
        messages.error(request, f"Type {item.slug} to confirm the rollback.")
        return redirect("console-tenant", slug=item.slug)
    try:
        back = roll_back(run, _by(request))
    except BackupError as exc:
        messages.error(request, str(exc))
        return redirect("console-tenant", slug=item.slug)
    staff.platform_record(
        "backup.rollback_requested",
        by=request.user,
        request=request,
        target=item.slug,
        restore=run.id.hex,
        rollback=back.id.hex,
        state=back.state,
    )
    messages.success(request, f"Rollback {back.get_state_display().lower()}.")
    return redirect("console-tenant", slug=item.slug)


# --- alerts -----------------------------------------------------------------------------
@staff_right("alerts.view")
def alerts(request):
    context = {
        "alerts": alert_actions.open_alerts().order_by("-raised_at"),
        "recent": Alert.objects.filter(resolved_at__isnull=False).order_by("-resolved_at")[:20],
        "can_manage": staff.may(request.staff, "alerts.manage"),
    }
    return render(request, "console/alerts.html", context)


@require_POST
@staff_right("alerts.manage")
def alert_decide(request, alert_id, decision):
    alert = Alert.objects.filter(pk=alert_id).first()
    if alert is None or decision not in ("acknowledge", "resolve"):
        raise Http404("no such alert")
    by = request.user.get_username()
    if decision == "acknowledge":
        done = alert_actions.acknowledge(alert, by)
        action = "alert.acknowledged"
    else:
        done = alert_actions.resolve_by_hand(alert, by)
        action = "alert.resolved"
    if done:
        staff.platform_record(action, by=request.user, request=request, target=alert.key)
        messages.success(request, f"Alert {decision}d.")
    else:
        messages.error(request, "This alert was already handled.")
    return redirect("console-alerts")


# --- tickets and grants -----------------------------------------------------------------
@staff_right("tickets.view")
def ticket_list(request):
    state = request.GET.get("state", "open")
    rows = Ticket.objects.select_related("tenant")
    if state == "open":
        rows = rows.exclude(state=Ticket.CLOSED)
    elif state == "closed":
        rows = rows.filter(state=Ticket.CLOSED)
    page = Paginator(rows.order_by("-priority", "-updated_at"), 50).get_page(
        request.GET.get("page")
    )
    return render(request, "console/tickets.html", {"page": page, "state": state})


class StaffReplyForm(forms.Form):
    body = forms.CharField(label="Answer", widget=forms.Textarea, max_length=20000)


class GrantRequestForm(forms.Form):
    scope = forms.ChoiceField(choices=AccessGrant.SCOPES, initial=AccessGrant.READ)
    minutes = forms.TypedChoiceField(
        label="Duration",
        coerce=int,
        choices=[
            (15, "15 minutes"),
            (30, "30 minutes"),
            (60, "1 hour"),
            (120, "2 hours"),
            (240, "4 hours"),
        ],
        initial=60,
    )
    reason = forms.CharField(max_length=300, help_text="The customer reads it.")


class ReportStepForm(forms.Form):
    stage = forms.ChoiceField(label="Move to")
    severity = forms.ChoiceField(choices=SecurityReport.SEVERITIES, required=False)
    fixed_in = forms.CharField(
        label="Fixed in release", max_length=100, required=False, help_text="when fixed"
    )
    advisory_id = forms.CharField(
        label="Advisory", max_length=100, required=False, help_text="e.g. OXY-2026-001"
    )
    advisory_url = forms.URLField(label="Advisory address", required=False, assume_scheme="https")
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)

    def __init__(self, *args, report=None, **kwargs):
        super().__init__(*args, **kwargs)
        stages = dict(SecurityReport.STAGES)
        following = SecurityReport.NEXT.get(report.stage, ()) if report else ()
        self.fields["stage"].choices = [(s, stages[s]) for s in following]
        if report is not None:
            self.fields["severity"].initial = report.severity


def _ticket(ticket_id) -> Ticket:
    ticket = Ticket.objects.select_related("tenant").filter(pk=ticket_id).first()
    if ticket is None:
        raise Http404("no such ticket")
    return ticket


@staff_right("tickets.view")
def ticket(request, ticket_id):
    item = _ticket(ticket_id)
    member = request.staff
    reply = StaffReplyForm(request.POST if request.POST.get("form") == "reply" else None)
    ask = GrantRequestForm(request.POST if request.POST.get("form") == "grant" else None)
    report = disclosure.report_for(item) if item.category == Ticket.SECURITY else None
    step = ReportStepForm(
        request.POST if request.POST.get("form") == "security" else None, report=report
    )
    if request.method == "POST":
        try:
            if report is not None and step.is_bound and step.is_valid():
                disclosure.advance(report, member=member, **step.cleaned_data)
                messages.success(request, "Security report moved on.")
                return redirect("console-ticket", ticket_id=item.pk)
            if reply.is_bound and reply.is_valid():
                tickets.staff_reply(item, member=member, body=reply.cleaned_data["body"])
                messages.success(request, "Answer sent; the customer is e-mailed.")
                return redirect("console-ticket", ticket_id=item.pk)
            if ask.is_bound and ask.is_valid():
                grant = grants.request_grant(member, item, **ask.cleaned_data)
                messages.success(request, f"Access {grant.get_state_display().lower()}.")
                return redirect("console-ticket", ticket_id=item.pk)
        except (StaffError, PermissionDenied, disclosure.DisclosureError) as exc:
            messages.error(request, str(exc))
    context = {
        "ticket": item,
        "report": report,
        "report_due": disclosure.deadline(report) if report else None,
        "step": step,
        "can_track": staff.may(member, "security.reports"),
        "ticket_messages": item.messages.all(),
        "grants": item.grants.select_related("staff").order_by("-requested_at"),
        "reply": reply,
        "ask": ask,
        "can_answer": staff.may(member, "tickets.answer"),
        "can_request": staff.may(member, "grants.request"),
        "member": member,
        # An outsider's e-mailed report has no tenant: nothing to enter, no grant.
        "policy": SupportPolicy.for_tenant(item.tenant) if item.tenant else SupportPolicy.NEVER,
    }
    return render(request, "console/ticket.html", context)


@require_POST
@staff_right("tickets.answer")
def ticket_close(request, ticket_id):
    item = _ticket(ticket_id)
    with told(request, f"Ticket #{item.pk} closed; its grants ended."):
        tickets.close_ticket(item, by=request.user)
    return redirect("console-ticket", ticket_id=item.pk)


@require_POST
@staff_right("grants.request")
def grant_open(request, grant_id):
    """The hand-off: a one-time link to the tenant's host, valid 60 seconds."""
    grant = AccessGrant.objects.select_related("tenant", "staff").filter(pk=grant_id).first()
    if grant is None:
        raise Http404("no such grant")
    try:
        url = grants.handoff_url(grant, request.staff)
    except StaffError as exc:
        messages.error(request, str(exc))
        return redirect("console-ticket", ticket_id=grant.ticket_id)
    # A page with the link rather than a redirect: the CSP's form-action 'self' (rightly)
    # stops a form post from landing on another host.
    response = render(request, "console/handoff.html", {"grant": grant, "url": url})
    response["Cache-Control"] = "no-store"
    return response


# --- security: scans and reports (S10, S11) -----------------------------------------------
@staff_right("security.scans")
def security(request):
    from oxygis.security.models import ScanRun

    runs = ScanRun.objects.prefetch_related("results")[:10]
    context = {
        "latest": runs[0] if runs else None,
        "runs": runs,
        "can_track": staff.may(request.staff, "security.reports"),
        "reports": disclosure.board() if staff.may(request.staff, "security.reports") else [],
    }
    return render(request, "console/security.html", context)


# --- audit and staff ----------------------------------------------------------------------
@staff_right("audit.view")
def audit(request):
    return audit_page(request)


class StaffCreateForm(forms.Form):
    username = forms.CharField(max_length=150)
    name = forms.CharField(max_length=150, help_text="Customers see 'Support: NAME'.")
    email = forms.EmailField()
    role = forms.ChoiceField(choices=StaffMember.ROLES)


@staff_right("staff.view")
def staff_list(request):
    form = StaffCreateForm(request.POST or None)
    if request.method == "POST":
        if not staff.may(request.staff, "staff.manage"):
            raise PermissionDenied("your role may not manage staff")
        if form.is_valid():
            try:
                member = staff.create_staff(by=request.user, **form.cleaned_data)
            except StaffError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"{member.name} invited by e-mail.")
                return redirect("console-staff")
    context = {
        "members": staff.with_users(StaffMember.objects.order_by("name")),
        "form": form,
        "roles": StaffMember.ROLES,
        "can_manage": staff.may(request.staff, "staff.manage"),
    }
    return render(request, "console/staff.html", context)


@require_POST
@staff_right("staff.manage")
def staff_change(request, member_id, change):
    member = StaffMember.objects.filter(pk=member_id).first()
    if member is None:
        raise Http404("no such staff member")
    if change not in ("role", "disable", "enable"):
        raise Http404("no such change")
    with told(request, f"{member.name}: {change} done."):
        if change == "role":
            staff.set_role(member, request.POST.get("role", ""), by=request.user)
        else:
            staff.set_active(member, change == "enable", by=request.user)
    return redirect("console-staff")
