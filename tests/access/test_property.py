"""S6: for random users, roles and orders, the rows visible through the layer are exactly
the rows the rules define (property-based, hypothesis)."""

from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oxygis.access.actors import acting_as, system
from oxygis.sales.models import Contact, Order, OrderLine
from oxygis.tenancy.databases import tenant_context

ROLES = ["Salesperson", "Sales manager", "Read-only", "Administrator", None]
WIDE = {"Sales manager", "Read-only", "Administrator"}


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    roles=st.lists(st.sampled_from(ROLES), min_size=1, max_size=4),
    owners=st.lists(st.integers(min_value=0, max_value=3), min_size=0, max_size=8),
    viewer=st.integers(min_value=0, max_value=3),
)
def test_visible_rows_equal_the_rule(bravo, roles, owners, viewer):
    """S6: visible orders and lines == own ones, or all of them for wide roles, or none."""
    viewer %= len(roles)
    with tenant_context(bravo.tenant), system(reason="property test set-up"):
        User = get_user_model()
        users = []
        for index, role in enumerate(roles):
            user = User.objects.create(username=f"p{index}-{len(owners)}-{viewer}-{role}")
            if role:
                user.groups.add(Group.objects.get(name=role))
            users.append(user)
        customer = Contact.objects.create(name="Property customer")
        made = []
        for number, owner in enumerate(owners):
            order = Order.objects.create(
                number=f"P{number}-{len(owners)}-{viewer}",
                customer=customer,
                salesperson=users[owner % len(users)],
            )
            OrderLine.objects.create(order=order, description="x", unit_price=Decimal(1))
            made.append(order)
    try:
        with tenant_context(bravo.tenant):
            me = User.objects.get(pk=users[viewer].pk)  # fresh: no permission cache
            role = roles[viewer]
            with acting_as(me):
                seen = set(Order.objects.filter(customer=customer).values_list("pk", flat=True))
                lines = set(
                    OrderLine.objects.filter(order__customer=customer).values_list(
                        "order_id", flat=True
                    )
                )
            if role is None:
                expected = set()
            elif role in WIDE:
                expected = {o.pk for o in made}
            else:
                expected = {o.pk for o in made if o.salesperson_id == me.pk}
            assert seen == expected
            assert lines == expected
    finally:
        with tenant_context(bravo.tenant), system(reason="property test clean-up"):
            OrderLine.objects.filter(order__customer=customer).delete()
            Order.objects.filter(customer=customer).delete()
            customer.delete()
            for user in users:
                user.delete()
