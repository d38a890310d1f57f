"""Catalog models: the control plane's record of tenants, plans and database servers."""

from __future__ import annotations

import uuid

from django.db import models


class Plan(models.Model):
    """A subscription plan; its RTO is the whitepaper's (C7) and its retention C1's."""

    PAID, TRIAL, EDUCATION, FREEMIUM = "paid", "trial", "education", "freemium"
    CODES = [(PAID, "Paid"), (TRIAL, "Trial"), (EDUCATION, "Education"), (FREEMIUM, "Freemium")]

    code = models.CharField(max_length=20, unique=True, choices=CODES)
    name = models.CharField(max_length=100)
    rto_hours = models.PositiveSmallIntegerField(help_text="Recovery time objective, hours")
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
    region = models.CharField(max_length=50, default="local")
    # PostgreSQL: an administrative login able to create roles and databases.
    host = models.CharField(max_length=255, blank=True)
    port = models.PositiveIntegerField(null=True, blank=True)
    admin_user = models.CharField(max_length=63, blank=True)
    admin_password_sealed = models.TextField(blank=True)  # sealing.seal(), never clear
    admin_database = models.CharField(max_length=63, blank=True, default="postgres")
    options = models.JSONField(default=dict, blank=True)  # libpq options, e.g. sslmode
    # SQLite: the folder holding one file per tenant.
    path = models.CharField(max_length=1024, blank=True)
    accepts_new_tenants = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.engine}, {self.region})"


class Tenant(models.Model):
    """A customer. ``id`` and ``db_name`` never change; the database is named from the id,
    never from anything a user typed (C9)."""

    PROVISIONING, ACTIVE, SUSPENDED = "provisioning", "active", "suspended"
    STATES = [(PROVISIONING, "Provisioning"), (ACTIVE, "Active"), (SUSPENDED, "Suspended")]

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    slug = models.CharField(max_length=40, unique=True)
    name = models.CharField(max_length=200)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="tenants")
    state = models.CharField(max_length=20, choices=STATES, default=PROVISIONING)
    database_server = models.ForeignKey(
        DatabaseServer, on_delete=models.PROTECT, related_name="tenants"
    )
    db_name = models.CharField(max_length=63, unique=True, editable=False)
    db_password_sealed = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    suspended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    @property
    def alias(self) -> str:
        """The Django connection alias of this tenant's database."""
        return f"tenant_{self.id.hex}"
