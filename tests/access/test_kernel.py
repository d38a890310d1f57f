"""S6: the access layer applies rights and record rules on every path, below the views."""

from decimal import Decimal

import pytest
from django import forms
from django.core.exceptions import PermissionDenied
from django.db.models.functions import Now

from oxygis.access.actors import NoActor, acting_as, system
from oxygis.audit.models import AuditEvent
from oxygis.sales import services
from oxygis.sales.models import Contact, Order, OrderLine, Product
from oxygis.tenancy.databases import tenant_context


@pytest.fixture
def as_user(world):
    def bind(name):
        return acting_as(world.user(name))

    with tenant_context(world.tenant):
        yield bind


def own(world, *names):
    """The ids of the orders of these salespeople, read beyond the rules."""
    with tenant_context(world.tenant), system(reason="test: expected rows"):
        return set(
            Order.objects.filter(salesperson__username__in=names).values_list("pk", flat=True)
        )


def test_no_actor_no_data(world):
    """S6: with no actor bound, every path refuses (fail closed)."""
    with tenant_context(world.tenant):
        for attempt in (
            lambda: Order.objects.count(),
            lambda: list(Contact.objects.all()),
            lambda: OrderLine.objects.filter(pk=1).exists(),
        ):
            with pytest.raises(NoActor):
                attempt()


@pytest.mark.parametrize(
    ("name", "sees"),
    [
        ("sam", ["sam"]),
        ("sue", ["sue"]),
        ("maria", ["sam", "sue", "maria"]),
        ("rita", ["sam", "sue", "maria"]),
        ("admin", ["sam", "sue", "maria"]),
        ("nora", []),
    ],
)
def test_querysets_show_exactly_what_the_role_allows(world, as_user, name, sees):
    """S6/S13: salespeople see their own orders and lines; managers, read-only users and
    admins see all; a user with no role sees none."""
    expected = own(world, *sees)
    with system(reason="test: expected rows"):
        all_contacts = Contact.objects.count()
        expected_lines = set(
            OrderLine.objects.filter(order__in=expected).values_list("pk", flat=True)
        )
    with as_user(name):
        assert set(Order.objects.values_list("pk", flat=True)) == expected
        assert set(OrderLine.objects.values_list("pk", flat=True)) == expected_lines
        assert Contact.objects.count() == (0 if name == "nora" else all_contacts)


def test_related_traversal_is_filtered_too(world, as_user):
    """S6: reverse relations and the base manager (forward foreign keys) apply the rules."""
    sue_order = world.orders["sue"][0]
    with system(reason="test: fetch another's line"):
        sue_line = OrderLine.objects.filter(order_id=sue_order).first()
    with as_user("sam"):
        customer = Contact.objects.get(pk=world.contacts[0].pk)
        assert {o.pk for o in customer.orders.all()} <= own(world, "sam")
        # A row of Sue's, reached by its id through a relation, does not resolve.
        with pytest.raises(Order.DoesNotExist):
            _ = sue_line.order
        with pytest.raises(OrderLine.DoesNotExist):
            OrderLine.objects.get(pk=sue_line.pk)
        assert not Order._base_manager.filter(pk=sue_order).exists()


def test_update_and_delete_respect_rights_and_rows(world, as_user):
    """S6: queryset update()/delete() touch only rows the actor may change, and need the
    right at all."""
    with as_user("sam"):
        changed = Order.objects.all().update(updated_at=Now())
        assert changed == len(own(world, "sam"))
        assert OrderLine.objects.filter(order_id=world.orders["sue"][0]).delete()[0] == 0
    with as_user("rita"), pytest.raises(PermissionDenied):
        Order.objects.all().update(currency="USD")
    with as_user("rita"), pytest.raises(PermissionDenied):
        OrderLine.objects.all().delete()


def test_saving_someone_elses_row_is_refused(world, as_user):
    """S6: a salesperson cannot change another's order, nor give their own away."""
    with system(reason="test: fetch"):
        sue_order = Order.objects.get(pk=world.orders["sue"][0])
        sam_order = Order.objects.get(pk=world.orders["sam"][0])
    with as_user("sam"):
        sue_order.currency = "USD"
        with pytest.raises(PermissionDenied):
            sue_order.save()
        sam_order.salesperson = world.user("sue")
        with pytest.raises(PermissionDenied):
            sam_order.save()
    with as_user("maria"):
        sam_order.salesperson = world.user("sam")
        sam_order.save()  # a manager may


def test_bulk_operations_check_rights(world, as_user):
    """S6: bulk_create and bulk_update go through the same checks."""
    with as_user("sam"):
        foreign = OrderLine(order_id=world.orders["sue"][0], description="x", unit_price=Decimal(1))
        with pytest.raises(PermissionDenied):
            OrderLine.objects.bulk_create([foreign])
    with system(reason="test: fetch"):
        sue_orders = list(Order.objects.filter(pk__in=world.orders["sue"]))
    with as_user("sam"), pytest.raises(PermissionDenied):
        Order.objects.bulk_update(sue_orders, ["currency"])
    with as_user("rita"), pytest.raises(PermissionDenied):
        Contact.objects.bulk_create([Contact(name="New")])


def test_read_only_writes_nothing(world, as_user):
    """S13: the read-only role reads everything and writes nothing."""
    with as_user("rita"):
        order = Order.objects.get(pk=world.orders["sam"][0])
        with pytest.raises(PermissionDenied):
            services.cancel_order(order)
        with pytest.raises(PermissionDenied):
            Product.objects.create(name="X", sku="RO-1", unit_price=Decimal(1))


def test_contacts_and_products_editable_by_managers_only(world, as_user):
    """S13: every sales role reads contacts and products; managers and admins edit."""
    with as_user("sam"):
        contact = Contact.objects.get(pk=world.contacts[1].pk)
        contact.phone = "+32 2 000 00 00"
        with pytest.raises(PermissionDenied):
            contact.save()
    with as_user("maria"):
        contact = Contact.objects.get(pk=world.contacts[1].pk)
        contact.phone = "+32 2 000 00 00"
        contact.save()


def test_form_choices_come_through_the_layer(world, as_user):
    """S6: a form's choice field offers only the rows the actor may see."""

    class LineForm(forms.ModelForm):
        class Meta:
            model = OrderLine
            fields = ["order", "description", "unit_price"]

    with as_user("sam"):
        offered = {int(str(v)) for v, _ in LineForm().fields["order"].choices if v}
        assert offered == own(world, "sam")
        posted = LineForm({"order": world.orders["sue"][0], "description": "x", "unit_price": "1"})
        assert not posted.is_valid() and "order" in posted.errors


def test_a_queryset_made_before_any_actor_takes_the_actor_of_its_use(world):
    """S6: querysets built at import time (forms) take the rules of whoever runs them,
    and refuse to run for nobody; as a subquery too."""
    with tenant_context(world.tenant):
        early = Order.objects.all()  # no error yet: nothing has run
        with pytest.raises(NoActor):
            list(early)
        later = Order.objects.all()
        with acting_as(world.user("sue")):
            assert {o.pk for o in later} == own(world, "sue")
            sub = OrderLine.objects.filter(order__in=Order.objects.all())
            seen = {line.order_id for line in sub}
            assert set(world.orders["sue"]) <= seen <= own(world, "sue")
        pending = Order.objects.filter(currency="EUR")
        with acting_as(world.user("sam")):
            lines = OrderLine.objects.filter(order__in=pending)
            seen = {line.order_id for line in lines}
            assert set(world.orders["sam"]) <= seen <= own(world, "sam")


def test_system_bypass_is_explicit_and_audited(world):
    """S6: system(reason=...) sees everything and leaves an audit event with its reason."""
    with tenant_context(world.tenant):
        with pytest.raises(ValueError), system(reason=" "):
            pass
        with system(reason="nightly export test") as actor:
            assert Order.objects.count() >= 6
            assert "nightly export test" in str(actor)
        assert AuditEvent.objects.filter(
            action="access.system", target="nightly export test"
        ).exists()


def test_prefetched_and_related_rows_follow_each_actor_in_turn(world, as_user):
    """S6: the scoped querysets the layer keeps per actor (so that a prefetch does not
    compile the rule once per row) never serve another actor: actors bound one after
    the other in the same thread, each through prefetches, related managers and the
    base manager, see their own rows only; a read-only key's actor cannot write."""
    from oxygis.access.actors import ReadOnlyActor

    def seen(prefetching=True):
        orders = Order.objects.prefetch_related("lines") if prefetching else Order.objects
        lines = {line.pk for order in orders.all() for line in order.lines.all()}
        return {o.pk for o in orders.all()}, lines

    with system(reason="test: expected lines"):
        lines_of = {
            name: set(
                OrderLine.objects.filter(order__in=own(world, *names)).values_list("pk", flat=True)
            )
            for name, names in (
                ("sam", ["sam"]),
                ("sue", ["sue"]),
                ("maria", ["sam", "sue", "maria"]),
            )
        }
    for name in ("sam", "sue", "maria", "sam", "nora", "sue"):
        with as_user(name):
            expected = own(world, *{"maria": ["sam", "sue", "maria"], "nora": []}.get(name, [name]))
            for prefetching in (True, False):
                orders, lines = seen(prefetching)
                assert orders == expected
                assert lines == lines_of.get(name, set())
    sam = world.user("sam")
    with as_user("sam"):
        assert Order.objects.exists()
        with acting_as(ReadOnlyActor(sam)):
            assert {o.pk for o in Order.objects.all()} == own(world, "sam")
            with pytest.raises(PermissionDenied):
                Order.objects.all().update(currency="USD")
        # Back to sam himself: his own scoped rows again, and his right to write.
        assert Order.objects.all().update(updated_at=Now()) == len(own(world, "sam"))
