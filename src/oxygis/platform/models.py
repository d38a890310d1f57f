"""The platform's own records, in the catalog: staff, support tickets, access grants.

A staff member is a user of the catalog database (accounts.User there: the same hasher,
password policy, lockout and 2FA as every user) with a ``StaffMember`` row naming their
role. Tenant users live in their tenant's database: tickets keep the opener's id, name
and address as they were, never a reference across databases.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.functional import cached_property

from oxygis.core.text import validate_single_line
from oxygis.tenancy.context import CATALOG
from oxygis.tenancy.models import Tenant


class StaffMember(models.Model):
    SUPPORT, OPERATIONS, SECURITY, ADMIN = "support", "operations", "security", "admin"
    ROLES = [
        (SUPPORT, "Support"),
        (OPERATIONS, "Operations"),
        (SECURITY, "Security"),
        (ADMIN, "Administrator"),
    ]

    # The catalog's accounts.User, by id: not a foreign key, since that model lives in
    # every database, and a tenant user's deletion would look for staff rows there.
    user_id = models.BigIntegerField(unique=True, editable=False)
    role = models.CharField(max_length=20, choices=ROLES)
    name = models.CharField(max_length=150, validators=[validate_single_line])
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=200, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_role_display()})"

    @cached_property
    def user(self):
        return get_user_model()._default_manager.using(CATALOG).get(pk=self.user_id)

    @property
    def is_active(self) -> bool:
        return self.user.is_active


class SupportPolicy(models.Model):
    """What a tenant's administrators decided about staff access (C14). No row: the
    default, access only after a tenant administrator approves."""

    ALLOWED, APPROVAL, NEVER = "allowed", "approval", "never"
    CHOICES = [
        (ALLOWED, "Allowed: support staff may open a grant on a ticket"),
        (APPROVAL, "After approval: an administrator approves each grant"),
        (NEVER, "Never: support staff never enter this workspace"),
    ]

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="+")
    staff_access = models.CharField(max_length=10, choices=CHOICES, default=APPROVAL)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.CharField(max_length=200, blank=True, editable=False)

    def __str__(self) -> str:
        return f"{self.tenant_id}: {self.staff_access}"

    @classmethod
    def for_tenant(cls, tenant) -> str:
        row = cls.objects.filter(tenant=tenant).first()
        return row.staff_access if row else cls.APPROVAL


class Ticket(models.Model):
    QUESTION, RESTORE, SECURITY = "question", "restore", "security"
    CATEGORIES = [
        (QUESTION, "Question"),
        (RESTORE, "Restore request"),
        (SECURITY, "Security report"),
    ]
    LOW, NORMAL, HIGH, URGENT = 1, 2, 3, 4
    PRIORITIES = [(LOW, "Low"), (NORMAL, "Normal"), (HIGH, "High"), (URGENT, "Urgent")]
    OPEN, ANSWERED, CLOSED = "open", "answered", "closed"
    STATES = [(OPEN, "Waiting for support"), (ANSWERED, "Answered"), (CLOSED, "Closed")]

    # None: a security report e-mailed from outside (security.txt), no tenant behind it.
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="+", null=True, blank=True
    )
    subject = models.CharField(max_length=200, validators=[validate_single_line])
    category = models.CharField(max_length=10, choices=CATEGORIES, default=QUESTION)
    priority = models.PositiveSmallIntegerField(choices=PRIORITIES, default=NORMAL)
    state = models.CharField(max_length=10, choices=STATES, default=OPEN, editable=False)
    # The tenant user who opened it, as they were (their row lives in another database).
    opened_by_id = models.BigIntegerField(editable=False)
    opened_by_name = models.CharField(max_length=200, editable=False)
    opened_by_email = models.EmailField(blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    closed_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-priority", "-updated_at"]
        indexes = [models.Index(fields=["tenant", "-updated_at"]), models.Index(fields=["state"])]

    def __str__(self) -> str:
        return f"#{self.pk} {self.subject}"

    @property
    def number(self) -> int:
        return self.pk

    @property
    def is_closed(self) -> bool:
        return self.state == self.CLOSED


class SecurityReport(models.Model):
    """A vulnerability report's way from received to fixed and disclosed (S10).

    One per security ticket, whether it came from the in-app form or by e-mail. The
    response times promised in SECURITY.md are ``DEADLINES``; the console shows what is
    late."""

    RECEIVED, TRIAGED, FIXING, FIXED, DISCLOSED, REJECTED = (
        "received",
        "triaged",
        "fixing",
        "fixed",
        "disclosed",
        "rejected",
    )
    STAGES = [
        (RECEIVED, "Received"),
        (TRIAGED, "Triaged"),
        (FIXING, "Fix in progress"),
        (FIXED, "Fixed"),
        (DISCLOSED, "Advisory published"),
        (REJECTED, "Not a vulnerability"),
    ]
    # Where each stage may go next: forward only, and "rejected" only before a fix.
    NEXT = {
        RECEIVED: (TRIAGED, REJECTED),
        TRIAGED: (FIXING, FIXED, REJECTED),
        FIXING: (FIXED,),
        FIXED: (DISCLOSED,),
        DISCLOSED: (),
        REJECTED: (),
    }
    UNRATED, LOW, MEDIUM, HIGH, CRITICAL = "", "low", "medium", "high", "critical"
    SEVERITIES = [
        (UNRATED, "Not rated yet"),
        (LOW, "Low"),
        (MEDIUM, "Medium"),
        (HIGH, "High"),
        (CRITICAL, "Critical"),
    ]

    ticket = models.OneToOneField(Ticket, on_delete=models.CASCADE, related_name="security_report")
    stage = models.CharField(max_length=10, choices=STAGES, default=RECEIVED, editable=False)
    severity = models.CharField(max_length=10, choices=SEVERITIES, blank=True)
    received_at = models.DateTimeField(default=timezone.now, editable=False)
    acknowledged_at = models.DateTimeField(null=True, blank=True, editable=False)
    triaged_at = models.DateTimeField(null=True, blank=True, editable=False)
    fixed_at = models.DateTimeField(null=True, blank=True, editable=False)
    disclosed_at = models.DateTimeField(null=True, blank=True, editable=False)
    closed_at = models.DateTimeField(null=True, blank=True, editable=False)
    fixed_in = models.CharField(max_length=100, blank=True, validators=[validate_single_line])
    advisory_id = models.CharField(max_length=100, blank=True, validators=[validate_single_line])
    advisory_url = models.URLField(blank=True)
    notes = models.TextField(blank=True, max_length=20000)

    class Meta:
        ordering = ["-received_at"]
        indexes = [models.Index(fields=["stage"])]

    def __str__(self) -> str:
        return f"security report on ticket #{self.ticket_id} ({self.stage})"

    @property
    def is_open(self) -> bool:
        return self.stage not in (self.DISCLOSED, self.REJECTED)


class TicketMessage(models.Model):
    CUSTOMER, STAFF = "customer", "staff"
    SIDES = [(CUSTOMER, "Customer"), (STAFF, "Oxygis support")]

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="messages")
    side = models.CharField(max_length=10, choices=SIDES, editable=False)
    author = models.CharField(max_length=200, editable=False)
    body = models.TextField(max_length=20000)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.author} on ticket #{self.ticket_id}"


class AccessGrant(models.Model):
    """A staff member's time-boxed entry into one tenant for one ticket (C14)."""

    READ, WRITE = "read", "write"
    SCOPES = [(READ, "Read-only"), (WRITE, "Read and write")]
    REQUESTED, ACTIVE, DENIED, REVOKED, EXPIRED, ENDED = (
        "requested",
        "active",
        "denied",
        "revoked",
        "expired",
        "ended",
    )
    STATES = [
        (REQUESTED, "Waiting for approval"),
        (ACTIVE, "Active"),
        (DENIED, "Denied"),
        (REVOKED, "Revoked"),
        (EXPIRED, "Expired"),
        (ENDED, "Ended with the ticket"),
    ]
    MAX_MINUTES = 240
    # A request nobody decided on lapses: an approval must be about now, not last week.
    REQUEST_VALID = timedelta(hours=24)

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="grants")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    staff = models.ForeignKey(StaffMember, on_delete=models.PROTECT, related_name="grants")
    scope = models.CharField(max_length=5, choices=SCOPES, default=READ)
    minutes = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(5), MaxValueValidator(MAX_MINUTES)]
    )
    reason = models.CharField(max_length=300, validators=[validate_single_line])
    state = models.CharField(max_length=10, choices=STATES, default=REQUESTED, editable=False)
    requested_at = models.DateTimeField(default=timezone.now, editable=False)
    decided_at = models.DateTimeField(null=True, blank=True, editable=False)
    decided_by = models.CharField(max_length=200, blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    entered_at = models.DateTimeField(null=True, blank=True, editable=False)  # first hand-off
    ended_at = models.DateTimeField(null=True, blank=True, editable=False)
    ended_by = models.CharField(max_length=200, blank=True, editable=False)

    class Meta:
        ordering = ["-requested_at"]
        indexes = [models.Index(fields=["tenant", "state", "expires_at"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(minutes__gte=5, minutes__lte=240), name="grant_max_4_hours"
            )
        ]

    def __str__(self) -> str:
        return f"grant {self.pk} ({self.get_scope_display()}) for ticket #{self.ticket_id}"

    def is_live(self, now=None) -> bool:
        now = now or timezone.now()
        return self.state == self.ACTIVE and self.expires_at is not None and self.expires_at > now


class SupportHandoff(models.Model):
    """A one-time, 60-second link from the console into the tenant's host: only the hash
    of its nonce is kept, and it is spent by the first use."""

    VALID = timedelta(seconds=60)

    grant = models.ForeignKey(AccessGrant, on_delete=models.CASCADE, related_name="handoffs")
    nonce_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    used_at = models.DateTimeField(null=True, blank=True, editable=False)

    def __str__(self) -> str:
        return f"hand-off {self.pk} of grant {self.grant_id}"


class TenantDropRequest(models.Model):
    """Dropping a tenant takes two platform administrators: one asks, another approves."""

    PENDING, DONE, CANCELLED = "pending", "done", "cancelled"
    STATES = [
        (PENDING, "Waiting for a second administrator"),
        (DONE, "Dropped"),
        (CANCELLED, "Cancelled"),
    ]

    tenant_slug = models.CharField(max_length=40, editable=False)
    tenant_id_value = models.UUIDField(editable=False)
    requested_by = models.ForeignKey(StaffMember, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(default=timezone.now, editable=False)
    state = models.CharField(max_length=10, choices=STATES, default=PENDING, editable=False)
    decided_by = models.CharField(max_length=200, blank=True, editable=False)
    decided_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-requested_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant_id_value"],
                condition=models.Q(state="pending"),
                name="one_pending_drop_per_tenant",
            )
        ]

    def __str__(self) -> str:
        return f"drop {self.tenant_slug} ({self.state})"
