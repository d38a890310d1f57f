"""Who is acting: bound once per unit of work, read by the access managers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied


@dataclass(frozen=True)
class SystemActor:
    """A job or command working beyond any user's rights, for a stated reason."""

    reason: str
    is_active = True

    def __str__(self) -> str:
        return f"system ({self.reason})"


class NoActor(PermissionDenied):
    """Data was reached with no actor bound: refused (fail closed)."""


_current_actor: ContextVar[object | None] = ContextVar("oxygis_actor", default=None)


def current_actor():
    actor = _current_actor.get()
    if actor is None:
        raise NoActor("no actor is bound: data access needs a user or system(reason=...)")
    return actor


@contextmanager
def acting_as(actor) -> Iterator[object]:
    token = _current_actor.set(actor)
    try:
        yield actor
    finally:
        _current_actor.reset(token)


@contextmanager
def system(*, reason: str) -> Iterator[SystemActor]:
    """Bypass the record rules and rights, for jobs: explicit, and audited."""
    if not reason or not reason.strip():
        raise ValueError("system() needs a reason")
    from oxygis.audit.events import record

    previous = _current_actor.get()
    record(
        "access.system",
        actor=previous if getattr(previous, "is_authenticated", False) else None,
        target=reason[:200],
    )
    with acting_as(SystemActor(reason)) as actor:
        yield actor


class ReadOnlyActor:
    """A user acting through a read-only credential (an API key of scope "read"): the
    same rows, but every write right answers no, so the access layer refuses writes."""

    def __init__(self, user):
        self._user = user

    def __getattr__(self, name):
        return getattr(self._user, name)

    def has_perm(self, perm, obj=None):
        verb = perm.split(".", 1)[-1].split("_", 1)[0]
        return verb == "view" and self._user.has_perm(perm, obj)


def bind_actor_for_request(actor) -> None:
    """Re-bind the actor inside a request (API key authentication happens after the
    middleware bound the anonymous actor); the middleware restores it at the end."""
    _current_actor.set(actor)


@dataclass(frozen=True)
class StaffActor:
    """C14: an Oxygis support person inside a tenant through an access grant.

    A distinct identity ("Support: <name>"), never a tenant user and never the
    customer's password: it has no row in the tenant's database (``pk`` is None, so no
    record rule of "own rows" ever matches it). Its rights are the business data only
    (no users, roles, policy, keys or 2FA: those are the customer's), and under a
    read-only grant only the ``view`` rights: the access layer refuses every write,
    whatever a page or the API offers. The middleware (platform/middleware.py) builds
    it per request from a grant it has just re-read, so a revoked or expired grant
    stops the very next request."""

    staff_id: int
    name: str
    grant_id: int
    ticket_id: int
    scope: str  # "read" or "write"
    is_active = True
    is_authenticated = True
    is_anonymous = False
    is_superuser = False
    is_staff = False
    pk = None
    id = None
    APPS = frozenset({"sales"})

    def has_perm(self, perm, obj=None) -> bool:
        app, _, codename = perm.partition(".")
        if app not in self.APPS:
            return False
        return codename.startswith("view_") or self.scope == "write"

    def has_perms(self, perms, obj=None) -> bool:
        return all(self.has_perm(perm, obj) for perm in perms)

    def has_module_perms(self, app_label: str) -> bool:
        return app_label in self.APPS

    def get_username(self) -> str:
        return f"Support: {self.name}"

    def get_full_name(self) -> str:
        return self.get_username()

    def is_verified(self) -> bool:
        return True  # they passed the console's 2FA to get the hand-off link

    def is_administrator(self) -> bool:
        return False

    def __str__(self) -> str:
        return self.get_username()


@dataclass(frozen=True)
class PortalActor:
    """The holder of an order's e-mailed link (S9): that order, its lines, its customer
    and products, to read and to answer (confirm or decline). Nothing else."""

    order_id: int
    is_active = True
    is_authenticated = False
    pk = None
    RIGHTS = frozenset(
        {
            "sales.view_order",
            "sales.view_orderline",
            "sales.view_contact",
            "sales.view_product",
            "sales.change_order",
        }
    )

    def has_perm(self, perm, obj=None) -> bool:
        return perm in self.RIGHTS

    def __str__(self) -> str:
        return f"customer link for order {self.order_id}"
