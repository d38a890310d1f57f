from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Lower

from oxygis.core.text import validate_single_line

POLICY_MIN_LENGTH = 10  # the whitepaper's floor (C13): a tenant may only raise it


class User(AbstractUser):
    """A person of one tenant (in that tenant's database) or platform staff (catalog).

    Signs in by username or e-mail; e-mail addresses are unique, case-insensitively.
    """

    # A PBKDF2-SHA512 hash is 132 characters: more than Django's default 128.
    password = models.CharField("password", max_length=256)
    # Names go into e-mail headers and pages: one line each.
    first_name = models.CharField(
        "first name", max_length=150, blank=True, validators=[validate_single_line]
    )
    last_name = models.CharField(
        "last name", max_length=150, blank=True, validators=[validate_single_line]
    )

    class Meta:
        db_table = "accounts_user"
        constraints = [
            models.UniqueConstraint(
                Lower("email"),
                name="accounts_user_email_ci_unique",
                condition=~models.Q(email=""),
            )
        ]
        permissions = [
            ("manage_users", "Can invite, edit, deactivate and unlock users"),
            ("manage_roles", "Can create and edit roles"),
            ("manage_security_policy", "Can change the security policy"),
            ("restore_backups", "Can see the backups and restore one side by side"),
            ("manage_support", "Can open support tickets and decide on staff access"),
        ]

    def is_administrator(self) -> bool:
        return self.is_superuser or self.groups.filter(name="Administrator").exists()


class SecurityPolicy(models.Model):
    """The tenant's own security settings: one row per database."""

    TWO_FACTOR_OPTIONAL, TWO_FACTOR_ADMINS, TWO_FACTOR_EVERYONE = "optional", "admins", "everyone"
    TWO_FACTOR_CHOICES = [
        (TWO_FACTOR_OPTIONAL, "Optional"),
        (TWO_FACTOR_ADMINS, "Required for administrators"),
        (TWO_FACTOR_EVERYONE, "Required for everyone"),
    ]

    min_password_length = models.PositiveSmallIntegerField(
        default=POLICY_MIN_LENGTH,
        validators=[MinValueValidator(POLICY_MIN_LENGTH), MaxValueValidator(128)],
        help_text=f"At least {POLICY_MIN_LENGTH}; the whitepaper's rule can only be made stricter.",
    )
    two_factor = models.CharField(
        max_length=20, choices=TWO_FACTOR_CHOICES, default=TWO_FACTOR_OPTIONAL
    )
    portal_link_days = models.PositiveSmallIntegerField(
        "customer links valid for (days)",
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(365)],
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(min_password_length__gte=POLICY_MIN_LENGTH),
                name="security_policy_never_weaker",
            )
        ]

    def __str__(self) -> str:
        return f"min length {self.min_password_length}, 2FA {self.two_factor}"

    @classmethod
    def current(cls) -> "SecurityPolicy":
        policy, _ = cls.objects.get_or_create(pk=1)
        return policy

    def requires_two_factor(self, user) -> bool:
        if self.two_factor == self.TWO_FACTOR_EVERYONE:
            return True
        return self.two_factor == self.TWO_FACTOR_ADMINS and user.is_administrator()


class UserSession(models.Model):
    """What the session list shows: one row per signed-in browser."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="browser_sessions"
    )
    session_key = models.CharField(max_length=40, unique=True, editable=False)
    user_agent = models.CharField(max_length=300, blank=True, editable=False)
    ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-last_seen"]

    def __str__(self) -> str:
        return f"{self.user_id} from {self.ip} ({self.last_seen:%Y-%m-%d %H:%M})"


class ApiKey(models.Model):
    """A personal API key: shown once, stored as a SHA-256 digest (the secret is 256
    random bits, so a fast digest is enough), scoped, expiring, revocable."""

    READ, READ_WRITE = "read", "read-write"
    SCOPES = [(READ, "Read only"), (READ_WRITE, "Read and write")]

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=100, validators=[validate_single_line])
    prefix = models.CharField(max_length=16, unique=True, editable=False)  # to find the key
    digest = models.CharField(max_length=64, editable=False)  # sha256 of the secret, hex
    scope = models.CharField(max_length=10, choices=SCOPES, default=READ)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
