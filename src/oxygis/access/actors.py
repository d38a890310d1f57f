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
