"""The demo tenant that ``oxygis serve`` creates on first start."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from oxygis.accounts.roles import READ_ONLY, SALES_MANAGER, SALESPERSON
from oxygis.tenancy.databases import tenant_context
from oxygis.tenancy.models import Plan, Tenant

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
        _seed_sales(User)
    return made


def _seed_sales(User) -> None:
    from decimal import Decimal

    from oxygis.access.actors import system
    from oxygis.sales import services
    from oxygis.sales.models import Company, Contact, Product, Tax

    with system(reason="demo data for a new demo tenant"):
        Company.objects.update_or_create(
            pk=1,
            defaults={
                "legal_name": "Démo Mobilier SAS",
                "street": "12 rue de la Paix",
                "postcode": "75002",
                "city": "Paris",
                "siren": "732829320",
                "siret": "73282932000074",
                "vat_number": "FR44732829320",
                "legal_form": "SAS au capital de 10 000 €, RCS Paris",
                "payment_terms": "30 jours fin de mois, par virement",
            },
        )
        standard = Tax.objects.get(rate=Decimal("20.00"), included=False)
        reduced = Tax.objects.get(rate=Decimal("5.50"), included=False)
        acme = Contact.objects.create(
            name="Acme Industries", email="buyer@acme.example", city="Brussels", country="BE"
        )
        Contact.objects.create(
            name="Alice Martin", kind=Contact.PERSON, parent=acme, email="alice@acme.example"
        )
        globex = Contact.objects.create(
            name="Globex SA", email="orders@globex.example", city="Lille", country="FR"
        )
        desk = Product.objects.create(
            name="Standing desk", sku="DESK-01", unit_price=Decimal("449.00"), tax=standard
        )
        chair = Product.objects.create(
            name="Ergonomic chair", sku="CHAIR-02", unit_price=Decimal("289.50"), tax=standard
        )
        setup = Product.objects.create(
            name="Installation (hour)", sku="SRV-INST", unit_price=Decimal("65.00"), tax=reduced
        )
        sam, maria = User.objects.get(username="sam"), User.objects.get(username="maria")
        for customer, seller, items in [
            (acme, sam, [(desk, 4), (setup, 2)]),
            (globex, sam, [(chair, 10)]),
            (globex, maria, [(desk, 2), (chair, 2), (setup, 1)]),
        ]:
            services.create_order(
                customer=customer,
                salesperson=seller,
                lines=[
                    services.LineInput(p.name, Decimal(q), p.unit_price, product=p)
                    for p, q in items
                ],
            )
