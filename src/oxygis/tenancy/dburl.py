"""Parse ``OXYGIS_DATABASE_URL`` (``postgresql://user:password@host:port/dbname``).

Kept free of Django model imports: settings.py uses it.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_ALLOWED_OPTIONS = {"sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout"}
# Django's PostgreSQL backend with connections from the process's budget (tenancy/pool.py).
POOLED_ENGINE = "oxygis.tenancy.postgresql"
POSTGRESQL_ENGINES = ("django.db.backends.postgresql", POOLED_ENGINE)


def is_postgresql(entry: dict) -> bool:
    return entry["ENGINE"] in POSTGRESQL_ENGINES


def parse_database_url(url: str) -> dict:
    """Return a Django ``DATABASES`` entry; errors never echo the URL (it holds a password)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ImproperlyConfigured(
            "OXYGIS_DATABASE_URL must start with postgresql:// (SQLite needs no URL)"
        )
    name = unquote(parts.path.lstrip("/"))
    if not name or "/" in name:
        raise ImproperlyConfigured("OXYGIS_DATABASE_URL must name a database: .../dbname")
    try:
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured("OXYGIS_DATABASE_URL has an invalid port") from None
    options = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in _ALLOWED_OPTIONS:
            raise ImproperlyConfigured(f"OXYGIS_DATABASE_URL: unknown option {key!r}")
        options[key] = value
    return {
        "ENGINE": POOLED_ENGINE,
        "OXYGIS_BUDGET": "catalog",
        "NAME": name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(port or ""),
        "OPTIONS": options,
        "CONN_MAX_AGE": 0,
    }
