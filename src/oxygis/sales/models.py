"""The sales domain. Every model is access-controlled (oxygis.access)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from oxygis.access.actors import PortalActor
from oxygis.access.models import AccessControlledModel
from oxygis.core.text import validate_single_line

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
HUNDRED = Decimal("100")
COUNTRY_CODE = RegexValidator(r"^[A-Za-z]{2}\Z", "Use a 2-letter ISO 3166 code, e.g. BE.")
CURRENCY_CODE = RegexValidator(r"^[A-Z]{3}\Z", "Use a 3-letter ISO 4217 code, e.g. EUR.")
TAX_RATE = [
    MinValueValidator(ZERO),
    MaxValueValidator(HUNDRED, "A tax rate is at most %(limit_value)s %%."),
]


def money(value: Decimal) -> Decimal:
    """Round to the cent, half up (commercial rounding), explicitly."""
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def check_fits(instance, *names: str) -> None:
    """Refuse computed amounts that their columns cannot hold.

    Threat: a stored denial of service. An amount over the column's digits would be
    written (SQLite stores anything) or fail late, then break every page and API list
    that reads it back, for everyone in the tenant. Checked before any write.
    """
    for name in names:
        field = instance._meta.get_field(name)
        largest = Decimal(10) ** (field.max_digits - field.decimal_places) - CENT
        value = getattr(instance, name)
        if abs(value) > largest:
            raise ValidationError(
                f"The {field.verbose_name} ({value:,}) would be larger than the largest amount "
                f"Oxygis keeps ({largest:,}): use smaller quantities or prices, or split it.",
                code="amount_too_large",
            )


class Contact(AccessControlledModel):
    COMPANY, PERSON = "company", "person"
    KINDS = [(COMPANY, "Company"), (PERSON, "Person")]

    kind = models.CharField(max_length=10, choices=KINDS, default=COMPANY)
    name = models.CharField(max_length=200, validators=[validate_single_line])
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=50, blank=True, validators=[validate_single_line])
    street = models.CharField(max_length=200, blank=True, validators=[validate_single_line])
    postcode = models.CharField(max_length=20, blank=True, validators=[validate_single_line])
    city = models.CharField(max_length=100, blank=True, validators=[validate_single_line])
    country = models.CharField(
        max_length=2,
        blank=True,
        help_text="ISO 3166 code, e.g. BE",
        validators=[validate_single_line, COUNTRY_CODE],
    )
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="members",
        limit_choices_to={"kind": "company"},
        verbose_name="company",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(AccessControlledModel.Meta):
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["name"])]

    def __str__(self) -> str:
        return self.name

    @classmethod
    def record_rule(cls, actor, verb):
        # A customer's link shows that order's customer only.
        return Q(orders=actor.order_id) if isinstance(actor, PortalActor) else None

    def clean(self):
        if self.parent_id and self.parent_id == self.pk:
            raise ValidationError({"parent": "A contact cannot be its own company."})


class Product(AccessControlledModel):
    name = models.CharField(max_length=200, validators=[validate_single_line])
    sku = models.CharField("SKU", max_length=64, unique=True, validators=[validate_single_line])
    unit_price = models.DecimalField(
        max_digits=12, decimal_places=2, validators=[MinValueValidator(ZERO)]
    )
    tax_rate = models.DecimalField(
        "tax rate (%)",
        max_digits=5,
        decimal_places=2,
        default=Decimal("21.00"),
        validators=TAX_RATE,
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(AccessControlledModel.Meta):
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.sku})"

    @classmethod
    def record_rule(cls, actor, verb):
        if isinstance(actor, PortalActor):  # the products on that order only
            on_order = models.QuerySet(OrderLine).filter(order_id=actor.order_id)
            return Q(pk__in=on_order.values("product_id"))
        return None


def _wide_right(verb: str) -> str:
    return "sales.view_all_orders" if verb == "view" else "sales.change_all_orders"


def order_rule(actor, verb: str, to_order: str):
    """S13: the orders ``actor`` may ``verb``, for rows reached by ``to_order`` ("" for
    orders themselves): a customer's link its one order; a salesperson their own; a role
    with the wide right (managers, read-only for viewing, admins) all of them."""
    if isinstance(actor, PortalActor):
        return Q(**{f"{to_order}pk": actor.order_id})
    if actor.has_perm(_wide_right(verb)):
        return None
    return Q(**{f"{to_order}salesperson": actor.pk})


class IllegalTransition(ValidationError):
    pass


class Order(AccessControlledModel):
    DRAFT, SENT, CONFIRMED, CANCELLED = "draft", "sent", "confirmed", "cancelled"
    STATES = [
        (DRAFT, "Quotation"),
        (SENT, "Quotation sent"),
        (CONFIRMED, "Confirmed"),
        (CANCELLED, "Cancelled"),
    ]
    TRANSITIONS = {
        DRAFT: {SENT, CONFIRMED, CANCELLED},
        SENT: {DRAFT, CONFIRMED, CANCELLED},
        CONFIRMED: {CANCELLED},
        CANCELLED: {DRAFT},
    }
    EDITABLE_STATES = {DRAFT, SENT}
    CHANNELS = [("web", "Web"), ("api", "API"), ("portal", "Customer portal")]

    number = models.CharField(max_length=20, unique=True, editable=False)
    customer = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="orders")
    salesperson = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders"
    )
    currency = models.CharField(
        max_length=3, default="EUR", validators=[validate_single_line, CURRENCY_CODE]
    )
    state = models.CharField(max_length=10, choices=STATES, default=DRAFT, editable=False)
    confirmed_at = models.DateTimeField(null=True, blank=True, editable=False)
    confirmation_channel = models.CharField(
        max_length=10, choices=CHANNELS, blank=True, editable=False
    )
    amount_untaxed = models.DecimalField(
        "untaxed amount", max_digits=14, decimal_places=2, default=ZERO, editable=False
    )
    amount_tax = models.DecimalField(
        "tax amount", max_digits=14, decimal_places=2, default=ZERO, editable=False
    )
    amount_total = models.DecimalField(
        "order total", max_digits=14, decimal_places=2, default=ZERO, editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(AccessControlledModel.Meta):
        ordering = ["-id"]
        permissions = [
            ("view_all_orders", "Can see every order, not only their own"),
            ("change_all_orders", "Can change every order, not only their own"),
        ]
        indexes = [models.Index(fields=["salesperson", "-id"]), models.Index(fields=["state"])]

    def __str__(self) -> str:
        return self.number or "new order"

    # --- record rule (S13): a salesperson sees and edits their own orders -------------
    @classmethod
    def record_rule(cls, actor, verb):
        return order_rule(actor, verb, "")

    def allows(self, actor, verb):
        if isinstance(actor, PortalActor):
            return self.pk == actor.order_id
        return actor.has_perm(_wide_right(verb)) or self.salesperson_id == actor.pk

    # --- state machine ----------------------------------------------------------------
    def check_transition(self, target: str) -> None:
        if target not in self.TRANSITIONS.get(self.state, set()):
            raise IllegalTransition(
                f"order {self.number} cannot go from {self.get_state_display().lower()} "
                f"to {dict(self.STATES)[target].lower()}"
            )

    @property
    def editable(self) -> bool:
        return self.state in self.EDITABLE_STATES

    def compute_totals(self) -> None:
        untaxed = tax = ZERO
        for line in self.lines.all():
            untaxed += line.subtotal
            tax += line.tax_amount
        self.amount_untaxed, self.amount_tax = money(untaxed), money(tax)
        self.amount_total = self.amount_untaxed + self.amount_tax
        check_fits(self, "amount_untaxed", "amount_tax", "amount_total")


class OrderLine(AccessControlledModel):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, null=True, blank=True)
    description = models.CharField(max_length=300, validators=[validate_single_line])
    quantity = models.DecimalField(
        max_digits=12,
        decimal_places=3,
        default=Decimal("1"),
        validators=[MinValueValidator(Decimal("0.001"))],
    )
    unit_price = models.DecimalField(
        max_digits=12, decimal_places=2, validators=[MinValueValidator(ZERO)]
    )
    tax_rate = models.DecimalField(
        max_digits=5, decimal_places=2, default=Decimal("21.00"), validators=TAX_RATE
    )
    subtotal = models.DecimalField(
        "line subtotal", max_digits=14, decimal_places=2, default=ZERO, editable=False
    )

    class Meta(AccessControlledModel.Meta):
        ordering = ["id"]

    def __str__(self) -> str:
        return self.description

    @classmethod
    def record_rule(cls, actor, verb):
        return order_rule(actor, verb, "order__")  # a line goes with its order

    def allows(self, actor, verb):
        # The order is read through its (filtered) base manager: invisible -> refused.
        return Order.objects.filter(pk=self.order_id).exists() and self.order.allows(actor, verb)

    @property
    def tax_amount(self) -> Decimal:
        return money(self.subtotal * self.tax_rate / Decimal(100))

    def compute(self) -> None:
        self.subtotal = money(Decimal(self.quantity) * Decimal(self.unit_price))
        check_fits(self, "subtotal")


class OrderSequence(models.Model):
    """The gap-free order counter of this tenant: one row, locked while an order takes
    its number, in the same transaction (so a rolled-back order gives its number back)."""

    next_number = models.PositiveIntegerField(default=1)

    def __str__(self) -> str:
        return f"next {self.next_number}"
