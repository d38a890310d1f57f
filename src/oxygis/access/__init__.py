"""The access layer: the security kernel (S6, S13).

Every unit of work has an actor (a user, or the system with a reason). Models that
inherit :class:`~oxygis.access.models.AccessControlledModel` are only reachable through
managers that apply the actor's rights (view/add/change/delete permissions from roles)
and record rules (which rows), on every path: querysets, related objects (the base
manager included), ``update()``, ``delete()``, saves, and so forms and the API. Views
never re-check rights. ``system(reason=...)`` is the one audited way around the rules.
"""
