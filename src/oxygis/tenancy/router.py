"""The database router: every model has one home (DESIGN.md, "Databases").

* catalog: the control plane (tenants, plans, database servers), only in ``default``;
* local: auth, sessions and the like, present in every database, used in whichever one
  the current context names (a tenant's for a tenant's request, the catalog's on the
  console);
* tenant: business data, only in tenant databases, never in the catalog.

A tenant or local model used with nothing bound raises NoDatabaseContext (fail closed).
"""

from __future__ import annotations

from .context import CATALOG, NoDatabaseContext, current_database

CATALOG_HOME, LOCAL_HOME, TENANT_HOME = "catalog", "local", "tenant"

CATALOG_APPS = frozenset({"core", "tenancy", "backups", "platform", "security"})
LOCAL_APPS = frozenset(
    {
        "auth",
        "contenttypes",
        "sessions",
        "accounts",
        "audit",
        "axes",
        "otp_totp",
        "otp_static",
        "django_otp_webauthn",
    }
)


def home_of(app_label: str) -> str:
    """Everything not explicitly catalog or local lives in tenant databases."""
    if app_label in CATALOG_APPS:
        return CATALOG_HOME
    if app_label in LOCAL_APPS:
        return LOCAL_HOME
    return TENANT_HOME


def database_for(app_label: str) -> str:
    home = home_of(app_label)
    if home == CATALOG_HOME:
        return CATALOG
    alias = current_database()
    if home == TENANT_HOME and alias == CATALOG:
        raise NoDatabaseContext(f"{app_label} data lives in tenant databases, not the catalog")
    return alias


class HomeRouter:
    def db_for_read(self, model, **hints):
        return database_for(model._meta.app_label)

    def db_for_write(self, model, **hints):
        return database_for(model._meta.app_label)

    def allow_relation(self, obj1, obj2, **hints):
        # Never join rows across databases (e.g. a tenant user and a catalog row).
        return obj1._state.db == obj2._state.db

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        home = home_of(app_label)
        if home == CATALOG_HOME:
            return db == CATALOG
        if home == TENANT_HOME:
            return db != CATALOG
        return True
