"""The one settings module of Oxygis, configured by ``OXYGIS_*`` environment variables.

There is no local settings file to import. Development (the default) generates what it
needs under the var directory; production refuses to start without explicit, safe values.
See docs/operations.md for every variable.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from oxygis import config
from oxygis.tenancy.dburl import parse_database_url

ENV = config.env_choice("ENV", config.ENVIRONMENTS, "development")
PRODUCTION = ENV == "production"

VAR_DIR = Path(config.env_str("VAR_DIR") or "var").resolve()
DOMAIN = config.env_domain("DOMAIN", "localhost")
DEBUG = config.env_bool("DEBUG", False)

# --- secret key -------------------------------------------------------------------
SECRET_KEY = config.env_secret("SECRET_KEY")
# Old keys still accepted for signatures and sealed catalog secrets during a rotation.
SECRET_KEY_FALLBACKS = [k for k in (config.env_secret("SECRET_KEY_FALLBACKS") or "").split() if k]
if SECRET_KEY is None and not PRODUCTION:
    # Development and tests: a random key kept beside the data it protects, so sessions
    # survive a restart. Never a key written in the source.
    _key_file = VAR_DIR / "secret_key"
    if _key_file.exists():
        SECRET_KEY = _key_file.read_text().strip()
    else:
        VAR_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
        SECRET_KEY = secrets.token_urlsafe(64)
        _key_file.touch(mode=0o600)
        _key_file.write_text(SECRET_KEY)

# --- databases --------------------------------------------------------------------
DATABASE_URL = config.env_secret("DATABASE_URL")
# Prefix of every database and role name Oxygis creates on a server (tests use their own
# so that a crashed run can be swept without touching anything else).
DB_PREFIX = config.env_str("DB_PREFIX") or "oxygis_"
if not config.DOMAIN_RE.match(DB_PREFIX.rstrip("_").replace("_", "-")):
    raise ImproperlyConfigured("OXYGIS_DB_PREFIX may hold only a-z, 0-9 and _")

if DATABASE_URL:
    DATABASES = {"default": parse_database_url(DATABASE_URL)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(VAR_DIR / "catalog.sqlite3"),
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    }
DATABASE_ROUTERS = ["oxygis.tenancy.router.HomeRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- production refuses unsafe settings -------------------------------------------
if PRODUCTION:
    _problems = []
    if DEBUG:
        _problems.append("OXYGIS_DEBUG must be false")
    if not SECRET_KEY or len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
        _problems.append("OXYGIS_SECRET_KEY (or _FILE) must be set to 50+ random characters")
    if config.env_str("DOMAIN") is None:
        _problems.append("OXYGIS_DOMAIN must be set to the domain tenants live under")
    if not DATABASE_URL:
        _problems.append("OXYGIS_DATABASE_URL (or _FILE) must name the PostgreSQL catalog")
    if len(config.env_list("BACKUP_SITES")) < 3:
        _problems.append("OXYGIS_BACKUP_SITES must list at least 3 backup sites (C3)")
    if not config.env_secret("BACKUP_RECIPIENTS"):
        _problems.append("OXYGIS_BACKUP_RECIPIENTS (or _FILE) must hold the age public key(s)")
    if not config.env_secret("BACKUP_SIGNING_KEY"):
        _problems.append("OXYGIS_BACKUP_SIGNING_KEY (or _FILE) must hold the manifest key")
    if _problems:
        raise ImproperlyConfigured("refusing to start in production: " + "; ".join(_problems))

# --- applications -----------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "csp",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "django_otp_webauthn",
    "oxygis.core",
    "oxygis.tenancy",
    "oxygis.audit",
    "oxygis.accounts",
    "oxygis.access",
    "oxygis.sales",
    "oxygis.portal",
    "oxygis.backups",
    "oxygis.platform",
    "oxygis.security",
    "oxygis.web",
]
AUTH_USER_MODEL = "accounts.User"

MIDDLEWARE = [
    # Outermost: one access-log line for every answer, with its X-Request-ID (C17).
    "oxygis.audit.accesslog.AccessLogMiddleware",
    # Trusted-proxy headers first, so that everything after sees the real scheme and peer.
    "oxygis.tenancy.middleware.TrustedProxyMiddleware",
    # Logs the end of a database outage (web/outages.py) at the first good answer.
    "oxygis.web.outages.EpisodeMiddleware",
    # Header middleware before anything that answers early (the HTTPS redirect, static
    # files, the unknown-host 404), so that every response carries CSP and DENY.
    "csp.middleware.CSPMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Host -> tenant: unknown host 404, suspended tenant 503, before any tenant database.
    "oxygis.tenancy.middleware.TenantHostMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "oxygis.web.csrf.CsrfViewMiddleware",  # Django's, see web/csrf.py for its one exception
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # C14: on the console, only active staff; on a tenant host, a support session's
    # actor comes from its access grant, re-read on every request (and each is audited).
    "oxygis.platform.middleware.ConsoleStaffMiddleware",
    "oxygis.platform.middleware.SupportSessionMiddleware",
    # Idle and absolute session limits, session list bookkeeping.
    "oxygis.accounts.middleware.SessionActivityMiddleware",
    # Login is required by default; anonymous views carry @login_not_required.
    # Language and time zone: the user's, else the company's, else the browser's.
    "oxygis.web.locale.LocaleMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    # Signed in with a password only: nothing but the 2FA step (or enrolment) is reachable.
    "oxygis.accounts.middleware.TwoFactorGateMiddleware",
    # The actor every data access runs as (S6): no actor, no data.
    "oxygis.access.middleware.ActorMiddleware",
    # Lockout after repeated failures (django-axes); last, as axes requires.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "oxygis.urls"
WSGI_APPLICATION = "oxygis.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "oxygis.tenancy.context_processors.tenant",
                "oxygis.platform.context_processors.support",
            ],
        },
    }
]

# --- hosts and proxies ------------------------------------------------------------
# Django's own host check stays on as a second barrier behind TenantHostMiddleware.
ALLOWED_HOSTS = [DOMAIN, f".{DOMAIN}"]
TRUSTED_PROXIES = config.env_networks("TRUSTED_PROXIES")
USE_X_FORWARDED_HOST = False  # honoured only from TRUSTED_PROXIES, by our middleware
CONSOLE_SUBDOMAIN = "console"
# The port of the public HTTPS address, for links in e-mails (443: none shown). `oxygis
# serve` sets it to its own --port unless this is set (behind a proxy, say).
PUBLIC_PORT = config.env_int("PUBLIC_PORT", 443, minimum=1)

# --- HTTPS, cookies and headers (C12, S4) -----------------------------------------
SECURE_SSL_REDIRECT = True
SECURE_HSTS_SECONDS = config.env_int("HSTS_SECONDS", 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = PRODUCTION
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# The __Host- prefix makes browsers refuse these cookies unless Secure, Path=/ and with
# no Domain: a cookie can never be shared between tenants' hosts.
SESSION_COOKIE_NAME = "__Host-oxygis_session"
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = config.env_int("SESSION_MAX_AGE", 12 * 3600, minimum=300)
CSRF_COOKIE_NAME = "__Host-oxygis_csrf"
CSRF_COOKIE_SECURE = True
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Strict"
CSRF_FAILURE_VIEW = "oxygis.web.views.csrf_failure"
# Flash messages live in the session (the tenant's database), never in a cookie of their
# own: a cookie signed with the shared key would be accepted on every tenant's host.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
# Should a language cookie ever be set, it is host-only and Secure like the others.
LANGUAGE_COOKIE_NAME = "__Host-oxygis_language"
LANGUAGE_COOKIE_SECURE = True
LANGUAGE_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_SAMESITE = "Lax"
LANGUAGE_COOKIE_PATH = "/"

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [NONE],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [NONE],
        "object-src": [NONE],
    }
}

# --- identity (C10-C13, S12) -------------------------------------------------------
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
# OWASP's floor for PBKDF2-HMAC-SHA512 is 210,000; we refuse anything under 220,000.
PASSWORD_PBKDF2_SHA512_ITERATIONS = config.env_int("PASSWORD_ITERATIONS", 600_000, minimum=220_000)
PASSWORD_HASHERS = [
    "oxygis.accounts.hashers.PBKDF2SHA512PasswordHasher",  # new hashes (C10)
    # Older hashes still verify, and are re-hashed with the first one at the next login.
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "oxygis.accounts.validators.PasswordPolicyValidator"},  # C13
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # must be first: refuses locked-out attempts
    # A tenant's directory, when it has one switched on (S7); the local password after it
    # (refused then, except for break-glass administrators).
    "oxygis.accounts.backends.DirectoryBackend",
    # Never authenticates: the OpenID callback signs people in; it reloads their session.
    "oxygis.accounts.backends.OpenIDBackend",
    "oxygis.accounts.backends.UsernameOrEmailBackend",
    # Passwordless sign-in with a passkey (S12).
    "django_otp_webauthn.backends.WebAuthnBackend",
]
# Passkeys: one relying party per tenant (accounts/passkeys.py).
OTP_WEBAUTHN_RP_ID_CALLABLE = "oxygis.accounts.passkeys.relying_party_id"
OTP_WEBAUTHN_RP_NAME_CALLABLE = "oxygis.accounts.passkeys.relying_party_name"
OTP_WEBAUTHN_HELPER_CLASS = "oxygis.accounts.passkeys.TenantWebAuthnHelper"
OTP_WEBAUTHN_ALLOW_PASSWORDLESS_LOGIN = True
OTP_WEBAUTHN_EXCEPTION_LOGGER_NAME = "oxygis.accounts.passkeys"

# Seconds a directory may take to connect, and to answer each request, before a sign-in
# gives up on it: a dead directory costs a worker this long, never more (S7).
DIRECTORY_TIMEOUT = config.env_int("DIRECTORY_TIMEOUT", 5, minimum=1)
# The same for each request to a tenant's OpenID provider (discovery, keys, code exchange).
OIDC_TIMEOUT = config.env_int("OIDC_TIMEOUT", 5, minimum=1)
PASSWORD_RESET_TIMEOUT = 3600  # reset links live one hour
INVITATION_TIMEOUT = config.env_int("INVITATION_TIMEOUT", 3 * 24 * 3600, minimum=3600)
SESSION_IDLE_TIMEOUT = config.env_int("SESSION_IDLE_TIMEOUT", 3600, minimum=60)
# Platform staff on the console (C14): shorter sessions, whatever the tenants have.
STAFF_SESSION_IDLE_TIMEOUT = config.env_int("STAFF_SESSION_IDLE_TIMEOUT", 15 * 60, minimum=60)
STAFF_SESSION_MAX_AGE = config.env_int("STAFF_SESSION_MAX_AGE", 8 * 3600, minimum=300)
SUDO_TIMEOUT = 600  # sensitive changes ask for the password again after 10 minutes
OTP_TOTP_ISSUER = "Oxygis"

# Lockout (django-axes), in the bound database: shared by every worker and host.
AXES_FAILURE_LIMIT = config.env_int("LOCKOUT_FAILURES", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=config.env_int("LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "oxygis.accounts.lockout.client_ip"
AXES_USERNAME_CALLABLE = "oxygis.accounts.lockout.attempted_username"
AXES_LOCKOUT_CALLABLE = "oxygis.accounts.lockout.locked_out_response"
AXES_ENABLE_ADMIN = False
# The shared limiter (core/limiter.py): failed secret checks per client address, all
# accounts and tenants together, before any password is hashed (S12).
SECRET_CHECKS_BURST = config.env_int("SECRET_CHECKS_BURST", 10, minimum=1)
SECRET_CHECKS_PER_HOUR = config.env_int("SECRET_CHECKS_PER_HOUR", 120, minimum=1)
# Password hashes one process computes at once (accounts/hashers.py), and how long a
# request waits for a slot before it gets 503.
PASSWORD_HASHES_AT_ONCE = config.env_int("PASSWORD_HASHES_AT_ONCE", 1, minimum=1)
PASSWORD_HASH_WAIT = config.env_int("PASSWORD_HASH_WAIT", 1, minimum=0)
# Threads of each web server process (web/asgi.py): requests run there, one per thread.
WEB_THREADS = config.env_int("WEB_THREADS", 16, minimum=1)
AXES_VERBOSE = False

# --- static files, i18n -----------------------------------------------------------
STATIC_URL = "/static/"
# Collected by `oxygis serve` (web/staticfiles.py) under hashed names, with gzip and Brotli
# copies; WhiteNoise serves them with a year-long cache (the name changes with the file).
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
WHITENOISE_KEEP_ONLY_HASHED_FILES = True
# The interface speaks English and French. Each request is in the user's language, else
# the company's (sales.Company), else the browser's (web/locale.py); a customer's page
# and e-mails in the contact's. The catalog is compiled by the setup (make), not stored.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("fr", "Français")]
LOCALE_PATHS = [Path(__file__).resolve().parent / "locale"]
TIME_ZONE = "UTC"  # stored times are UTC; each page shows them in the reader's zone
USE_I18N = True
USE_TZ = True

# --- e-mail -----------------------------------------------------------------------
# Embedded default: each message an .eml file under var/mail/. With OXYGIS_SMTP_HOST, SMTP.
SMTP_HOST = config.env_str("SMTP_HOST")
if SMTP_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = SMTP_HOST
    EMAIL_PORT = config.env_int("SMTP_PORT", 587, minimum=1)
    EMAIL_HOST_USER = config.env_str("SMTP_USER") or ""
    EMAIL_HOST_PASSWORD = config.env_secret("SMTP_PASSWORD") or ""
    EMAIL_USE_TLS = config.env_bool("SMTP_STARTTLS", True)
    EMAIL_TIMEOUT = 30
else:
    EMAIL_BACKEND = "oxygis.core.mail.EmlFileBackend"
    EMAIL_FILE_PATH = VAR_DIR / "mail"
DEFAULT_FROM_EMAIL = config.env_str("FROM_EMAIL") or f"no-reply@{DOMAIN}"

# --- backups (C1-C4, C8); see backups/keys.py for the embedded key pair -------------
# Sites: URLs (file://, az://, s3://). Embedded default: three folders under var/backups/.
BACKUP_SITES = config.env_list("BACKUP_SITES") or [
    (VAR_DIR / "backups" / f"site-{name}").as_uri() for name in "abc"
]
# Public keys (age) the backups are encrypted to; the matching private key is needed
# only to restore, and in production lives offline (OXYGIS_BACKUP_IDENTITY_FILE).
BACKUP_RECIPIENTS = (config.env_secret("BACKUP_RECIPIENTS") or "").replace(",", " ").split()
BACKUP_IDENTITY_FILE = config.env_str("BACKUP_IDENTITY_FILE")
BACKUP_SIGNING_KEY = config.env_secret("BACKUP_SIGNING_KEY")
BACKUP_KEYS_DIR = VAR_DIR / "keys"  # embedded mode: the generated keys, apart from backups
BACKUP_SCRATCH_DIR = VAR_DIR / "scratch"  # SQLite dumps and restores in progress
BACKUP_MIN_GOOD_SITES = 3
BACKUP_WINDOW_HOURS = config.env_int("BACKUP_WINDOW_HOURS", 26, minimum=1)
WORKER_INTERVAL = config.env_int("WORKER_INTERVAL", 30, minimum=1)
# PostgreSQL connections each process keeps and reuses (tenancy/pool.py): to the catalog,
# to tenant databases (all together), and how long an idle one is kept.
CATALOG_CONNECTIONS = config.env_int("CATALOG_CONNECTIONS", 4, minimum=1)
TENANT_CONNECTIONS = config.env_int("TENANT_CONNECTIONS", 10, minimum=1)
DB_IDLE_SECONDS = config.env_int("DB_IDLE_SECONDS", 60, minimum=1)
# A connection pooler (PgBouncer, session mode) in front of the catalog's PostgreSQL
# server: tenant requests reach their databases through it (docs/operations.md).
# ``host:port``, or ``/socket/folder:port`` for one on this host.
DATABASE_POOLER = config.env_pooler_address("DATABASE_POOLER")
# A high-availability cluster (tenancy/replication.py): alert when a standby replays
# more than this many seconds behind its primary.
REPLICATION_LAG_ALERT_SECONDS = config.env_int("REPLICATION_LAG_ALERT_SECONDS", 30, minimum=1)
# A swap (live restore, rollback) waits this long for requests and jobs to finish.
RESTORE_DRAIN_SECONDS = config.env_int("RESTORE_DRAIN_SECONDS", 30, minimum=1)
# Databases kept by a swap are dropped after this many days (an alert comes before).
KEPT_DATABASE_DAYS = config.env_int("KEPT_DATABASE_DAYS", 30, minimum=1)
KEPT_DATABASE_WARNING_DAYS = 3
OPS_EMAIL = config.env_str("OPS_EMAIL") or ""
# Disaster-recovery drills (backups/drill.py): every N days (0: never), this many tenants.
DR_DRILL_DAYS = config.env_int("DR_DRILL_DAYS", 7, minimum=0)
DR_DRILL_SAMPLE = config.env_int("DR_DRILL_SAMPLE", 3, minimum=1)
DR_DRILL_TIMEOUT_HOURS = config.env_int("DR_DRILL_TIMEOUT_HOURS", 6, minimum=1)
# Point-in-time recovery on PostgreSQL (backups/pitr.py): pgBackRest's configuration and
# scratch clusters live under PITR_DIR, which the cluster's owner must be able to reach.
PITR_DIR = Path(config.env_str("PITR_DIR") or VAR_DIR / "pitr")
PITR_ARCHIVE_TIMEOUT = config.env_int("PITR_ARCHIVE_TIMEOUT", 60, minimum=1)  # seconds: the RPO
PITR_LAG_ALERT_MINUTES = config.env_int("PITR_LAG_ALERT_MINUTES", 5, minimum=1)
PITR_RETENTION_DAYS = config.env_int("PITR_RETENTION_DAYS", 14, minimum=1)
PITR_PG_BIN_DIR = config.env_str("PITR_PG_BIN_DIR")  # default: /usr/lib/postgresql/<major>/bin
PITR_RECOVERY_SECONDS = config.env_int("PITR_RECOVERY_SECONDS", 6 * 3600, minimum=10)

# --- security.txt (S10) -----------------------------------------------------------
SECURITY_CONTACT = config.env_str("SECURITY_CONTACT") or "mailto:security@oxygis.eu"

# --- security self-check and scans (S11) ----------------------------------------
# `oxygis security check`, and the worker's daily scan of every kind of host we serve.
SECURITY_ADVISORIES_DIR = Path(config.env_str("SECURITY_ADVISORIES_DIR") or VAR_DIR / "advisories")
SECURITY_ADVISORIES_URL = (
    config.env_str("SECURITY_ADVISORIES_URL")
    or "https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip"
)
# Off: never ask OSV's live API; the cached database only (air-gapped hosts).
SECURITY_ADVISORIES_ONLINE = config.env_bool("SECURITY_ADVISORIES_ONLINE", True)
# A cached database older than this is a finding itself (0: any age is accepted).
SECURITY_ADVISORIES_MAX_AGE_DAYS = config.env_int("SECURITY_ADVISORIES_MAX_AGE_DAYS", 7, minimum=0)
# The hashed lock files the dependency audit reads: by default the checkout's own.
_REPOSITORY = Path(__file__).resolve().parents[2]
SECURITY_LOCK_FILES = config.env_list("SECURITY_LOCK_FILES") or [
    str(_REPOSITORY / "requirements" / "base.lock")
]
# Where the scan connects instead of resolving each host name (SNI and Host stay the
# name), e.g. 127.0.0.1 when the worker runs beside the server.
SECURITY_SCAN_CONNECT = config.env_str("SECURITY_SCAN_CONNECT")
# A CA bundle to trust for the scanned names (the embedded mode's own CA by default).
SECURITY_SCAN_CAFILE = config.env_str("SECURITY_SCAN_CAFILE")
# 0: the worker never scans (the tests, and hosts scanned from elsewhere).
SECURITY_SCAN_EVERY_HOURS = config.env_int("SECURITY_SCAN_EVERY_HOURS", 24, minimum=0)

# --- access log and audit trail (C17) ----------------------------------------------
# One JSON line per request (audit/accesslog.py): to stdout, or to daily files named
# after this path (access.log -> access.2026-12-06.log), kept this many days.
ACCESS_LOG_FILE = config.env_str("ACCESS_LOG_FILE") or ""
ACCESS_LOG_RETENTION_DAYS = config.env_int("ACCESS_LOG_RETENTION_DAYS", 400, minimum=1)
# The worker signs each database's audit chain this often (and before each backup).
AUDIT_SEAL_MINUTES = config.env_int("AUDIT_SEAL_MINUTES", 60, minimum=1)
# Audit events older than this go, a whole signed segment at a time (0: kept forever).
AUDIT_RETENTION_DAYS = config.env_int("AUDIT_RETENTION_DAYS", 400, minimum=0)
# Suspicious patterns (audit/patterns.py), counted over the last hour: failed sign-ins
# in one tenant, refusals of existing objects to one actor.
ALERT_FAILED_SIGNINS_PER_HOUR = config.env_int("ALERT_FAILED_SIGNINS_PER_HOUR", 50, minimum=1)
ALERT_REFUSALS_PER_HOUR = config.env_int("ALERT_REFUSALS_PER_HOUR", 20, minimum=1)

# --- logging: one line per event, nothing secret ----------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "INFO"},
    "loggers": {
        "django.security.DisallowedHost": {"level": "ERROR"},
        "axes": {"level": "WARNING"},  # one INFO line per sign-in is noise; audit has it
        # Its "Not Found: /path" lines would repeat the access log, and paths may hold
        # tokens (the access log redacts them); errors (5xx) are still logged.
        "django.request": {"level": "ERROR"},
    },
}

# W003 looks for Django's CSRF middleware by its dotted path; ours is a subclass of it
# (web/csrf.py), and tests/web/test_headers.py checks that it is installed and enforcing.
SILENCED_SYSTEM_CHECKS: list[str] = [
    "security.W003",
    # django-otp-webauthn wants one fixed list of origins; ours is each tenant's own
    # address, given per request by accounts.passkeys.TenantWebAuthnHelper.
    "otp_webauthn.E030",
]
if not PRODUCTION:
    # W021 (HSTS preload) only makes sense on a real public domain.
    SILENCED_SYSTEM_CHECKS.append("security.W021")
