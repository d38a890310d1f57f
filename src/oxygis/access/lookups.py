"""Fetching one object named by a URL, through the access layer (S6, C17)."""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import get_object_or_404

from .actors import SystemActor, acting_as, current_actor


def get_visible_or_404(queryset_or_model, **lookup):
    """``get_object_or_404`` for the current actor. When the row exists but is not the
    actor's to see, the refusal is recorded in the audit trail before the 404 (the answer
    stays the same as for a row that does not exist), so that a user probing other
    people's objects shows up (audit page, alerts in audit/patterns.py)."""
    try:
        return get_object_or_404(queryset_or_model, **lookup)
    except Http404:
        model = getattr(queryset_or_model, "model", queryset_or_model)
        actor = current_actor()
        # Whether it exists at all, beyond the actor's rules: only a yes/no, never shown.
        with acting_as(SystemActor("refusal check")):
            exists = model._default_manager.filter(**lookup).exists()
        if exists:
            from oxygis.audit.events import record

            record(
                "access.refused",
                actor=actor if getattr(actor, "is_authenticated", False) else None,
                target=f"{model._meta.verbose_name} {', '.join(map(str, lookup.values()))}"[:200],
                model=model._meta.label_lower,
            )
        raise
