"""Catalog models: the control plane's record of tenants, plans and database servers."""

from __future__ import annotations

import secrets
import uuid

from django.db import models
from django.utils import timezone

from oxygis.core.text import validate_single_line


def validate_ports(value: str) -> None:
    """A port, or a comma-separated list of them (one per member of a cluster)."""
    from django.core.exceptions import ValidationError

    if value and not all(p.isdigit() and 1 <= int(p) <= 65535 for p in value.split(",")):
        raise ValidationError("ports are numbers from 1 to 65535, separated by commas")


def new_token_salt() -> str:
    return secrets.token_hex(16)


class Plan(models.Model):
    """A subscription plan; its RTO is the whitepaper's (C7) and its retention C1's."""

    PAID, TRIAL, EDUCATION, FREEMIUM = "paid", "trial", "education", "freemium"
    CODES = [(PAID, "Paid"), (TRIAL, "Trial"), (EDUCATION, "Education"), (FREEMIUM, "Freemium")]

    code = models.CharField(max_length=20, unique=True, choices=CODES)
    name = models.CharField(max_length=100, validators=[validate_single_line])
    rto_hours = models.PositiveSmallIntegerField(help_text="Recovery time objective, hours")
    rpo_hours = models.PositiveSmallIntegerField(
        default=24, help_text="Recovery point objective, hours"
    )
    backup_daily_days = models.PositiveSmallIntegerField(default=14)
    backup_weekly_weeks = models.PositiveSmallIntegerField(default=52)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


class DatabaseServer(models.Model):
    """Where tenant databases live: a PostgreSQL server, or a folder of SQLite files."""

    SQLITE, POSTGRESQL = "sqlite", "postgresql"
    ENGINES = [(SQLITE, "SQLite"), (POSTGRESQL, "PostgreSQL")]

    name = models.SlugField(max_length=50, unique=True)
    engine = models.CharField(max_length=20, choices=ENGINES)
    region = models.CharField(max_length=50, default="local", validators=[validate_single_line])
    # PostgreSQL: an administrative login able to create roles and databases. A cluster
    # (Patroni) is a list of its members, as libpq takes them: "db1,db2" and
    # "5432,5432"; connections go to the one accepting writes (target_session_attrs).
    host = models.CharField(max_length=255, blank=True, validators=[validate_single_line])
    port = models.CharField(
        max_length=100, blank=True, default="", validators=[validate_single_line, validate_ports]
    )
    admin_user = models.CharField(max_length=63, blank=True, validators=[validate_single_line])
    admin_password_sealed = models.TextField(blank=True)  # sealing.seal(), never clear
    admin_database = models.CharField(
        max_length=63, blank=True, default="postgres", validators=[validate_single_line]
    )
    options = models.JSONField(default=dict, blank=True)  # libpq options, e.g. sslmode
    # PostgreSQL: a connection pooler (PgBouncer, session mode) in front of the server.
    # Requests reach tenant databases through it; administration and dumps go direct.
    pooler_host = models.CharField(max_length=255, blank=True, validators=[validate_single_line])
    pooler_port = models.PositiveIntegerField(null=True, blank=True)
    # SQLite: the folder holding one file per tenant.
    path = models.CharField(max_length=1024, blank=True, validators=[validate_single_line])
    accepts_new_tenants = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.engine}, {self.region})"

    @property
    def members(self) -> list[tuple[str, str]]:
        """(host, port) of each member: one for a plain server, several for a cluster."""
        from .dburl import host_ports

        return host_ports(self.host, self.port or "5432")

    @property
    def address(self) -> str:
        """``host:port`` of each member, for messages."""
        return ", ".join(f"{host}:{port}" for host, port in self.members)


class Tenant(models.Model):
    """A customer. ``id`` and ``db_name`` never change; the database is named from the id,
    never from anything a user typed (C9)."""

    PROVISIONING, ACTIVE, SUSPENDED = "provisioning", "active", "suspended"
    # For the few seconds a live restore or a rollback swaps its database.
    MAINTENANCE = "maintenance"
    # While a disaster recovery (`oxygis dr rebuild`) has yet to bring it back.
    RECOVERING = "recovering"
    STATES = [
        (PROVISIONING, "Provisioning"),
        (ACTIVE, "Active"),
        (SUSPENDED, "Suspended"),
        (MAINTENANCE, "Being restored"),
        (RECOVERING, "Being recovered"),
    ]
    # A tenant that exists (its database is there, whether it answers or not).
    EXISTING = (ACTIVE, SUSPENDED, MAINTENANCE)
    # A tenant whose host is known (answers, perhaps with a 503): the ones that exist,
    # and those a disaster recovery is bringing back (no database yet: not EXISTING, so
    # that nothing backs them up or migrates them meanwhile).
    SERVED = (*EXISTING, RECOVERING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    slug = models.CharField(max_length=40, unique=True, validators=[validate_single_line])
    name = models.CharField(max_length=200, validators=[validate_single_line])
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="tenants")
    state = models.CharField(max_length=20, choices=STATES, default=PROVISIONING)
    database_server = models.ForeignKey(
        DatabaseServer, on_delete=models.PROTECT, related_name="tenants"
    )
    db_name = models.CharField(max_length=63, unique=True, editable=False)
    db_password_sealed = models.TextField(blank=True, editable=False)
    # Mixed into every signature made for this tenant (reset and invitation links,
    # customer links): a restored copy gets a new one, so no link of the original opens
    # it, and a live restore rotates it (C4, C9).
    token_salt = models.CharField(max_length=64, default=new_token_salt, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    suspended_at = models.DateTimeField(null=True, blank=True)
    # Zones holding a read replica of this tenant's database beyond its server's own
    # standby ("replicas in more zones on request", docs/deployment.md). A record for the
    # operators who place them; the application reads and writes on the primary only.
    replica_zones = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    @property
    def alias(self) -> str:
        """The Django connection alias of this tenant's database."""
        return f"tenant_{self.id.hex}"


class CredentialEvent(models.Model):
    """A credential that stopped being valid, kept outside the tenant's database.

    A restore brings back a database as it was at the backup point; these rows say what
    was revoked since (API keys, deactivated users, changed passwords, removed 2FA and
    passkeys, customer links), so that the restored database is made to forget it again
    before it is served (backups/credentials.py). Rows older than the oldest backup kept
    serve nothing and are pruned.
    """

    APIKEY_REVOKED = "apikey.revoked"  # subject: the key's prefix
    USER_DEACTIVATED = "user.deactivated"  # subject: the user's id
    USER_REACTIVATED = "user.reactivated"
    PASSWORD_CHANGED = "password.changed"  # noqa: S105 # nosec B105 # an event name
    TWOFACTOR_REMOVED = "twofactor.removed"
    LINK_REVOKED = "link.revoked"  # subject: the customer link's token digest
    PASSKEY_REMOVED = "passkey.removed"  # subject: the credential id's SHA-256
    KINDS = [
        (APIKEY_REVOKED, "API key revoked"),
        (USER_DEACTIVATED, "User deactivated"),
        (USER_REACTIVATED, "User reactivated"),
        (PASSWORD_CHANGED, "Password changed"),
        (TWOFACTOR_REMOVED, "Two-factor authentication removed"),
        (LINK_REVOKED, "Customer link revoked"),
        (PASSKEY_REMOVED, "Passkey removed"),
    ]

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=20, choices=KINDS)
    subject = models.CharField(max_length=100, editable=False)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["tenant", "at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.subject} at {self.at:%Y-%m-%d %H:%M}"
