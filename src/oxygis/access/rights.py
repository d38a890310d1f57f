"""What the current actor may do with a row or a model: the one question pages ask
before they offer a form or a button (S6, S13).

The answer comes from the same rights and record rules that the access layer applies
when the write happens, so a page never offers what the write would refuse, and a
template never re-states a rule of its own."""

from __future__ import annotations

from django.db import models

from .actors import SystemActor, current_actor
from .models import VERBS, AccessControlledModel, may


class Rights:
    """``rights.view``, ``.add``, ``.change``, ``.delete``: may the current actor do that
    to ``target``? A model: the right at all. A stored row: the right, and the row is
    within the actor's record rule for that verb. A new row (not saved): the right, and
    the row as it stands would be one the actor may write (e.g. a line of an order)."""

    def __init__(self, target, actor=None):
        self.target = target
        self.actor = actor if actor is not None else current_actor()
        self._known: dict[str, bool] = {}

    def __getattr__(self, verb: str) -> bool:
        if verb not in VERBS:
            raise AttributeError(verb)
        if verb not in self._known:
            self._known[verb] = self._may(verb)
        return self._known[verb]

    def __getitem__(self, verb: str) -> bool:
        return getattr(self, verb)

    def _may(self, verb: str) -> bool:
        target, actor = self.target, self.actor
        model = target if isinstance(target, type) else type(target)
        if not may(actor, model, verb):
            return False
        if isinstance(target, type) or isinstance(actor, SystemActor):
            return True
        if not issubclass(model, AccessControlledModel):
            return True
        if target._state.adding or target.pk is None:
            return target.allows(actor, verb)
        return model.objects.visible_to(actor, verb).filter(pk=target.pk).exists()


def rights(target: models.Model | type[models.Model], actor=None) -> Rights:
    return Rights(target, actor)
