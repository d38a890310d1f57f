from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from oxygis.core.i18n import language_choices, time_zone_choices
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
    # Where the person's identity lives (S7). A directory user has no password here: the
    # directory checks it at each sign-in, and says whether the account is still active.
    LOCAL, DIRECTORY, OPENID = "local", "ldap", "oidc"
    SOURCES = [
        (LOCAL, "Local password"),
        (DIRECTORY, "Company directory (LDAP)"),
        (OPENID, "Identity provider (OpenID Connect)"),
    ]
    # The person's own language and time zone; blank: the company's (sales.Company).
    language = models.CharField(_("language"), max_length=8, blank=True, choices=language_choices)
    time_zone = models.CharField(
        _("time zone"), max_length=64, blank=True, choices=time_zone_choices
    )
    source = models.CharField(max_length=10, choices=SOURCES, default=LOCAL, editable=False)
    # The directory entry's DN (sign-in matches on it, then on the username), or the
    # identity provider's "<issuer> <sub>" (the only thing an OpenID sign-in matches on).
    external_id = models.CharField(max_length=500, blank=True, editable=False)
    # An administrator who keeps their local password while the directory is on, to get
    # in when the directory is down (opted in by themselves, audited).
    break_glass = models.BooleanField(default=False, editable=False)
    # Disabled because the directory disabled them: the directory may enable them again.
    # A deactivation here (by an administrator) is never undone by a sign-in.
    disabled_by_directory = models.BooleanField(default=False, editable=False)

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
        help_text=format_lazy(
            _("At least {} characters: the platform's rule, which a workspace can only raise."),
            POLICY_MIN_LENGTH,
        ),
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


class SignInMethod(models.Model):
    """A way in besides local passwords (S7): settings kept in the tenant's database,
    one row; switched on by the tenant's administrator once it answers."""

    enabled = models.BooleanField(default=False, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True

    @classmethod
    def current(cls):
        return cls.objects.filter(pk=1).first()

    @classmethod
    def active(cls):
        return cls.objects.filter(pk=1, enabled=True).first()


class DirectoryConfig(SignInMethod):
    """S7: the tenant's LDAP / Active Directory, one row per database.

    Only TLS: ``ldaps://``, or ``ldap://`` always upgraded with StartTLS; a plain
    connection is never made, so the bind password and the users' passwords never cross
    the network in clear. The service password is sealed (``tenancy.sealing``)."""

    url = models.CharField(
        "server URL",
        max_length=300,
        help_text=_("ldaps://host:636, or ldap://host:389 (always upgraded with StartTLS)."),
        validators=[validate_single_line],
    )
    ca_certificate = models.TextField(
        "CA certificate (PEM)",
        blank=True,
        help_text=_(
            "The authority that signed the directory's certificate, if it is not a public one."
        ),
    )
    bind_dn = models.CharField(
        "service account DN", max_length=500, validators=[validate_single_line]
    )
    bind_password_sealed = models.TextField(blank=True, editable=False)
    user_base = models.CharField(
        "user search base", max_length=500, validators=[validate_single_line]
    )
    user_filter = models.CharField(
        "user filter",
        max_length=500,
        default="(uid={username})",
        help_text=_(
            "{username} is replaced by what the person typed (escaped). "
            "Active Directory: (sAMAccountName={username})."
        ),
        validators=[validate_single_line],
    )
    active_filter = models.CharField(
        "active accounts filter",
        max_length=500,
        blank=True,
        help_text=_(
            "An account that does not match it is disabled here at its next sign-in. "
            "Active Directory: (!(userAccountControl:1.2.840.113556.1.4.803:=2))."
        ),
        validators=[validate_single_line],
    )
    username_attribute = models.CharField(
        max_length=100,
        default="uid",
        help_text=_("Becomes the username here. Active Directory: sAMAccountName."),
        validators=[validate_single_line],
    )
    email_attribute = models.CharField(
        max_length=100, default="mail", validators=[validate_single_line]
    )
    first_name_attribute = models.CharField(
        max_length=100, default="givenName", validators=[validate_single_line]
    )
    last_name_attribute = models.CharField(
        max_length=100, default="sn", validators=[validate_single_line]
    )
    group_base = models.CharField(
        "group search base", max_length=500, blank=True, validators=[validate_single_line]
    )
    group_filter = models.CharField(
        "group filter",
        max_length=500,
        default="(&(objectClass=groupOfNames)(member={user_dn}))",
        help_text=_("{user_dn} is replaced by the person's DN (escaped)."),
        validators=[validate_single_line],
    )
    role_mapping = models.TextField(
        "groups and roles",
        blank=True,
        help_text=_(
            "One line per group: the group's DN = the role's name. People in no "
            "listed group cannot sign in."
        ),
    )

    def __str__(self) -> str:
        return f"{self.url} ({'on' if self.enabled else 'off'})"


class OpenIDConfig(SignInMethod):
    """S7: the tenant's OpenID Connect identity provider, one row per database.

    Authorization code flow with PKCE (S256), state and nonce; the ID token's signature
    (asymmetric algorithms only), issuer, audience, expiry and nonce are verified. The
    client secret is sealed (``tenancy.sealing``)."""

    TWO_FACTOR_OURS, TWO_FACTOR_IDP = "ours", "idp"
    TWO_FACTOR_CHOICES = [
        (TWO_FACTOR_OURS, "Our two-factor authentication applies, as for passwords"),
        (
            TWO_FACTOR_IDP,
            "The identity provider's multi-factor sign-in (amr/acr claim) satisfies it",
        ),
    ]

    label = models.CharField(
        "button label",
        max_length=60,
        default="your company account",
        validators=[validate_single_line],
        help_text=_('The sign-in page shows "Sign in with <label>".'),
    )
    issuer = models.CharField(
        "issuer URL",
        max_length=300,
        help_text=_("e.g. https://login.example.com/realms/acme"),
        validators=[validate_single_line],
    )
    client_id = models.CharField("client ID", max_length=200, validators=[validate_single_line])
    client_secret_sealed = models.TextField(blank=True, editable=False)
    scopes = models.CharField(
        max_length=200, default="openid email profile", validators=[validate_single_line]
    )
    username_claim = models.CharField(
        max_length=100, default="preferred_username", validators=[validate_single_line]
    )
    roles_claim = models.CharField(
        max_length=100, default="groups", validators=[validate_single_line]
    )
    role_mapping = models.TextField(
        "claim values and roles",
        blank=True,
        help_text=_(
            "One line per value of the roles claim: the value = the role's name. "
            "People with no listed value cannot sign in."
        ),
    )
    two_factor = models.CharField(
        "two-factor authentication",
        max_length=10,
        choices=TWO_FACTOR_CHOICES,
        default=TWO_FACTOR_OURS,
    )
    accepted_amr = models.CharField(
        "multi-factor amr values",
        max_length=200,
        default="mfa otp hwk sc",
        blank=True,
        help_text=_("Any of these in the ID token's amr claim counts as a second factor."),
        validators=[validate_single_line],
    )
    accepted_acr = models.CharField(
        "multi-factor acr values",
        max_length=300,
        blank=True,
        help_text=_("Any of these as the ID token's acr claim counts as a second factor."),
        validators=[validate_single_line],
    )
    passwords_off = models.BooleanField(
        "local passwords stop",
        default=False,
        help_text=_(
            "While on, local passwords open nothing, except those of break-glass administrators."
        ),
    )

    def __str__(self) -> str:
        return f"{self.issuer} ({'on' if self.enabled else 'off'})"
