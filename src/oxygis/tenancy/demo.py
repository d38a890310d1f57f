"""The demo tenant that ``oxygis serve`` creates on first start."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from oxygis.accounts.roles import READ_ONLY, SALES_MANAGER, SALESPERSON

from .databases import tenant_context
from .models import Plan, Tenant
from .provisioning import ProvisionedTenant, provision_tenant

DEMO_SLUG = "demo"
DEMO_PEOPLE = [
    ("sam", "Sam", "Seller", "sam@demo.example", SALESPERSON),
    ("maria", "Maria", "Manager", "maria@demo.example", SALES_MANAGER),
    ("rita", "Rita", "Reader", "rita@demo.example", READ_ONLY),
]


def ensure_demo_tenant() -> ProvisionedTenant | None:
    """Create the demo tenant with a few people; None when it already exists."""
    if Tenant.objects.filter(slug=DEMO_SLUG).exists():
        return None
    made = provision_tenant(DEMO_SLUG, name="Demo Company", plan=Plan.TRIAL)
    with tenant_context(made.tenant):
        User = get_user_model()
        for username, first, last, email, role in DEMO_PEOPLE:
            # No password: the administrator invites them (sets one by reset link).
            person = User(username=username, first_name=first, last_name=last, email=email)
            person.set_unusable_password()
            person.save()
            person.groups.add(Group.objects.get(name=role))
    return made
