"""Models whose every access goes through the actor's rights and record rules."""

from __future__ import annotations

from contextvars import ContextVar

from django.core.exceptions import EmptyResultSet, PermissionDenied
from django.db import models, transaction
from django.db.models import BooleanField, Expression, Q

from .actors import SystemActor, _current_actor, current_actor

VERBS = ("view", "add", "change", "delete")


def permission(model, verb: str) -> str:
    return f"{model._meta.app_label}.{verb}_{model._meta.model_name}"


def may(actor, model, verb: str) -> bool:
    """Does ``actor`` hold the right ``verb`` on ``model`` at all (rows aside)?"""
    if isinstance(actor, SystemActor):
        return True
    return bool(actor.is_active) and actor.has_perm(permission(model, verb))


def require(actor, model, verb: str) -> None:
    if not may(actor, model, verb):
        raise PermissionDenied(f"you may not {verb} {model._meta.verbose_name_plural}")


class PendingScope(Expression):
    """A WHERE condition that becomes the record rule of the actor bound when the SQL is
    compiled; with no actor it raises NoActor, so a pending queryset never runs unscoped."""

    output_field = BooleanField()
    conditional = True

    def __init__(self, model):
        super().__init__()
        self.model = model

    def as_sql(self, compiler, connection):
        actor = current_actor()
        if isinstance(actor, SystemActor):
            return "1 = 1", []
        if not may(actor, self.model, "view"):
            raise EmptyResultSet  # the WHERE matches nothing
        rule = self.model.record_rule(actor, "view")
        if rule is None:
            return "1 = 1", []
        # As "pk IN (rows the rule allows)": no join is added to the outer query.
        allowed = models.QuerySet(self.model).filter(rule).values("pk")
        return compiler.compile(compiler.query.build_where(Q(pk__in=allowed)))


class ScopedQuerySet(models.QuerySet):
    """A queryset narrowed to what the current actor may see; writes check rights.

    A queryset made while no actor is bound (a ModelForm's choice field is built when
    its module is imported) carries a :class:`PendingScope` condition instead: the rules
    of whoever is bound when its SQL is compiled, wherever it ends up (evaluated, counted,
    as a subquery), and a refusal if nobody is.
    """

    def visible_to(self, actor, verb: str = "view"):
        if isinstance(actor, SystemActor):
            return self
        if not may(actor, self.model, verb):
            return self.none()
        rule = self.model.record_rule(actor, verb)
        return self if rule is None else self.filter(rule)

    def update(self, **kwargs):
        actor = current_actor()
        require(actor, self.model, "change")
        return super(ScopedQuerySet, self.visible_to(actor, "change")).update(**kwargs)

    update.queryset_only = True

    def delete(self):
        actor = current_actor()
        require(actor, self.model, "delete")
        return super(ScopedQuerySet, self.visible_to(actor, "delete")).delete()

    delete.queryset_only = True

    def bulk_create(self, objs, *args, **kwargs):
        objs = list(objs)
        actor = current_actor()
        require(actor, self.model, "add")
        for obj in objs:
            obj.check_write_rule(actor, "add")
        return super().bulk_create(objs, *args, **kwargs)

    def bulk_update(self, objs, fields, *args, **kwargs):
        objs = list(objs)
        actor = current_actor()
        require(actor, self.model, "change")
        visible = set(
            self.visible_to(actor, "change")
            .filter(pk__in=[o.pk for o in objs])
            .values_list("pk", flat=True)
        )
        if len(visible) != len({o.pk for o in objs}):
            raise PermissionDenied("some of these rows are not yours to change")
        return super().bulk_update(objs, fields, *args, **kwargs)


# The scoped querysets built for the actor bound last in this context, one per model:
# a prefetch asks each of its rows' related managers for one (Django then replaces its
# rows), so building the rule once per actor rather than once per row keeps a list of
# 50 orders from compiling the same rule 50 times. Keyed on the actor object itself
# (held here, so no later actor can share its identity): a new request, a new key, a
# system() block, each gets its own; rights are as fresh as the actor's own permission
# cache, which Django keeps on the same object.
_scoped: ContextVar[tuple[object, dict] | None] = ContextVar("oxygis_scoped", default=None)


def _scoped_template(actor, model) -> models.QuerySet:
    held = _scoped.get()
    if held is None or held[0] is not actor:
        held = (actor, {})
        _scoped.set(held)
    templates = held[1]
    if model not in templates:
        templates[model] = ScopedQuerySet(model).visible_to(actor)
    return templates[model]


class AccessManager(models.Manager.from_queryset(ScopedQuerySet)):
    """The only manager of access-controlled models, and their base manager too: so
    ``line.order`` and ``order.lines`` are filtered like ``Order.objects``."""

    def get_queryset(self):
        actor = _current_actor.get()
        if actor is None:
            return super().get_queryset().filter(PendingScope(self.model))
        if isinstance(actor, SystemActor):
            return super().get_queryset()
        # A copy of the actor's scoped queryset for this model, on this manager's
        # database and hints (a related manager's instance among them).
        queryset = _scoped_template(actor, self.model)._chain()
        queryset._db = self._db
        queryset._hints = dict(self._hints)
        return queryset


class AccessControlledModel(models.Model):
    """Base of every model whose rows belong to someone: rights and record rules apply
    to reads (its manager, also the base manager) and to writes (save, delete)."""

    objects = AccessManager()

    class Meta:
        abstract = True
        base_manager_name = "objects"

    def save(self, *args, **kwargs):
        actor = current_actor()
        verb = "add" if self._state.adding else "change"
        require(actor, type(self), verb)
        with transaction.atomic(using=type(self).objects.db):
            # The row as stored must be one this actor may change, and stay one after.
            if verb == "change":
                self._check_stored_row(actor, verb)
            self.check_write_rule(actor, verb)
            super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        actor = current_actor()
        require(actor, type(self), "delete")
        self._check_stored_row(actor, "delete")
        return super().delete(*args, **kwargs)

    def authorize(self, verb: str) -> None:
        """Refuse unless the current actor may ``verb`` this stored row: for actions on
        a row that write elsewhere (e.g. e-mailing an order)."""
        actor = current_actor()
        require(actor, type(self), verb)
        self._check_stored_row(actor, verb)

    @classmethod
    def record_rule(cls, actor, verb: str):
        """A Q of the rows ``actor`` may ``verb``, or None for every row."""
        return None

    def allows(self, actor, verb: str) -> bool:
        """The record rule, evaluated on this row as it is in memory (about to be
        written). Models with a record rule override both."""
        return True

    def check_write_rule(self, actor, verb: str) -> None:
        """Refuse a row that, once written, ``actor`` could not ``verb`` (e.g. a
        salesperson creating an order for someone else)."""
        if not isinstance(actor, SystemActor) and not self.allows(actor, verb):
            raise PermissionDenied(f"you may not {verb} this {self._meta.verbose_name}")

    def _check_stored_row(self, actor, verb: str) -> None:
        if isinstance(actor, SystemActor):
            return
        if not type(self).objects.visible_to(actor, verb).filter(pk=self.pk).exists():
            raise PermissionDenied(f"you may not {verb} this {self._meta.verbose_name}")
