"""The sales domain. Every model is access-controlled (oxygis.access)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from oxygis.access.actors import PortalActor
from oxygis.access.models import AccessControlledModel
from oxygis.core.i18n import language_choices, time_zone_choices
from oxygis.core.text import validate_single_line

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
HUNDRED = Decimal("100")
COUNTRY_CODE = RegexValidator(r"^[A-Za-z]{2}\Z", _("Use a 2-letter ISO 3166 code, e.g. FR."))
CURRENCY_CODE = RegexValidator(r"^[A-Z]{3}\Z", _("Use a 3-letter ISO 4217 code, e.g. EUR."))
TAX_RATE = [
    MinValueValidator(ZERO),
    MaxValueValidator(HUNDRED, _("A tax rate is at most %(limit_value)s %%.")),
]
PERCENT = [
    MinValueValidator(ZERO),
    MaxValueValidator(HUNDRED, _("A discount is at most %(limit_value)s %%.")),
]
STANDARD_RATE = Decimal("20.00")  # France's standard VAT rate


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
                _(
                    "The %(field)s (%(value)s) would be larger than the largest amount "
                    "Oxygis keeps (%(largest)s): use smaller quantities or prices, or split it."
                ),
                code="amount_too_large",
                params={
                    "field": field.verbose_name,
                    "value": f"{value:,}",
                    "largest": f"{largest:,}",
                },
            )


class Contact(AccessControlledModel):
    COMPANY, PERSON = "company", "person"
    KINDS = [(COMPANY, _("Company")), (PERSON, _("Person"))]

    kind = models.CharField(_("kind"), max_length=10, choices=KINDS, default=COMPANY)
    name = models.CharField(_("name"), max_length=200, validators=[validate_single_line])
    email = models.EmailField(_("e-mail"), blank=True)
    phone = models.CharField(
        _("phone"), max_length=50, blank=True, validators=[validate_single_line]
    )
    vat_number = models.CharField(
        _("VAT number"), max_length=20, blank=True, validators=[validate_single_line]
    )
    # The billing address (the columns keep their first names: the API reads them).
    street = models.CharField(
        _("billing street"), max_length=200, blank=True, validators=[validate_single_line]
    )
    postcode = models.CharField(
        _("billing postcode"), max_length=20, blank=True, validators=[validate_single_line]
    )
    city = models.CharField(
        _("billing city"), max_length=100, blank=True, validators=[validate_single_line]
    )
    country = models.CharField(
        _("billing country"),
        max_length=2,
        blank=True,
        help_text=_("ISO 3166 code, e.g. FR"),
        validators=[validate_single_line, COUNTRY_CODE],
    )
    delivery_street = models.CharField(
        _("delivery street"), max_length=200, blank=True, validators=[validate_single_line]
    )
    delivery_postcode = models.CharField(
        _("delivery postcode"), max_length=20, blank=True, validators=[validate_single_line]
    )
    delivery_city = models.CharField(
        _("delivery city"), max_length=100, blank=True, validators=[validate_single_line]
    )
    delivery_country = models.CharField(
        _("delivery country"),
        max_length=2,
        blank=True,
        help_text=_("Leave the delivery address blank when it is the billing address."),
        validators=[validate_single_line, COUNTRY_CODE],
    )
    # The language of the e-mails, the customer's page and the PDF sent to this contact.
    language = models.CharField(
        _("language"),
        max_length=8,
        blank=True,
        choices=language_choices,
        help_text=_("Of the e-mails and documents sent to them; blank: the company's."),
    )
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="members",
        limit_choices_to={"kind": "company"},
        verbose_name=_("company"),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(AccessControlledModel.Meta):
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["name"])]
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")

    def __str__(self) -> str:
        return self.name

    @classmethod
    def record_rule(cls, actor, verb):
        # A customer's link shows that order's customer only.
        return Q(orders=actor.order_id) if isinstance(actor, PortalActor) else None

    def clean(self):
        if self.parent_id and self.parent_id == self.pk:
            raise ValidationError({"parent": _("A contact cannot be its own company.")})
        if self.vat_number:
            from .company import check_vat_number

            self.vat_number = check_vat_number(self.vat_number)

    @property
    def billing_lines(self) -> list[str]:
        return _address(self.street, self.postcode, self.city, self.country)

    @property
    def delivery_lines(self) -> list[str]:
        return _address(
            self.delivery_street, self.delivery_postcode, self.delivery_city, self.delivery_country
        )


def _address(street, postcode, city, country) -> list[str]:
    town = " ".join(part for part in (postcode, city) if part)
    return [line for line in (street, town, country.upper()) if line]


class Tax(AccessControlledModel):
    """A rate of the tenant's tax table. Lines keep a copy of its name and rate, so that
    changing the table later never changes an order already written."""

    name = models.CharField(
        _("name"), max_length=60, unique=True, validators=[validate_single_line]
    )
    rate = models.DecimalField(_("rate (%)"), max_digits=5, decimal_places=2, validators=TAX_RATE)
    included = models.BooleanField(
        _("included in prices"),
        default=False,
        help_text=_("Prices with this tax are all taxes included (TTC)."),
    )
    active = models.BooleanField(_("active"), default=True)

    class Meta(AccessControlledModel.Meta):
        ordering = ["-rate", "name"]
        verbose_name = _("tax")
        verbose_name_plural = _("taxes")

    def __str__(self) -> str:
        return self.name

    @classmethod
    def for_rate(cls, rate) -> Tax | None:
        """The table's active tax of ``rate`` on prices excluding tax, if there is one
        (for callers that give a rate, such as the API)."""
        return cls.objects.filter(rate=rate, included=False, active=True).first()


class Product(AccessControlledModel):
    name = models.CharField(_("name"), max_length=200, validators=[validate_single_line])
    sku = models.CharField(_("SKU"), max_length=64, unique=True, validators=[validate_single_line])
    unit_price = models.DecimalField(
        _("unit price"), max_digits=12, decimal_places=2, validators=[MinValueValidator(ZERO)]
    )
    tax = models.ForeignKey(
        Tax,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("tax"),
    )
    # The tax's rate, kept beside it (the API reads and writes the rate).
    tax_rate = models.DecimalField(
        _("tax rate (%)"),
        max_digits=5,
        decimal_places=2,
        default=STANDARD_RATE,
        validators=TAX_RATE,
    )
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(AccessControlledModel.Meta):
        ordering = ["name", "id"]
        verbose_name = _("product")
        verbose_name_plural = _("products")

    def __str__(self) -> str:
        return f"{self.name} ({self.sku})"

    def save(self, *args, **kwargs):
        if self.tax_id is not None:
            self.tax_rate = self.tax.rate
        super().save(*args, **kwargs)

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
    DRAFT, SENT, CONFIRMED = "draft", "sent", "confirmed"
    DECLINED, CANCELLED = "declined", "cancelled"
    STATES = [
        (DRAFT, _("Quotation")),
        (SENT, _("Quotation sent")),
        (CONFIRMED, _("Confirmed")),
        (DECLINED, _("Declined by the customer")),
        (CANCELLED, _("Cancelled")),
    ]
    # Declined is the customer's answer, cancelled the seller's decision: the seller
    # may revise a declined quotation (back to draft) or close it (cancel).
    TRANSITIONS = {
        DRAFT: {SENT, CONFIRMED, CANCELLED},
        SENT: {DRAFT, CONFIRMED, DECLINED, CANCELLED},
        CONFIRMED: {CANCELLED},
        DECLINED: {DRAFT, CANCELLED},
        CANCELLED: {DRAFT},
    }
    EDITABLE_STATES = {DRAFT, SENT}
    CHANNELS = [("web", _("Web")), ("api", _("API")), ("portal", _("Customer portal"))]

    number = models.CharField(_("number"), max_length=20, unique=True, editable=False)
    customer = models.ForeignKey(
        Contact, on_delete=models.PROTECT, related_name="orders", verbose_name=_("customer")
    )
    salesperson = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="orders",
        verbose_name=_("salesperson"),
    )
    currency = models.CharField(
        _("currency"), max_length=3, default="EUR", validators=[validate_single_line, CURRENCY_CODE]
    )
    valid_until = models.DateField(_("valid until"), null=True, blank=True)
    # S9: changes with every change the customer would see (lines, prices, taxes,
    # discounts, customer, currency, validity). An acceptance names the revision it saw.
    revision = models.PositiveIntegerField(_("revision"), default=1, editable=False)
    state = models.CharField(
        _("state"), max_length=10, choices=STATES, default=DRAFT, editable=False
    )
    confirmed_at = models.DateTimeField(null=True, blank=True, editable=False)
    confirmation_channel = models.CharField(
        max_length=10, choices=CHANNELS, blank=True, editable=False
    )
    amount_untaxed = models.DecimalField(
        _("untaxed amount"), max_digits=14, decimal_places=2, default=ZERO, editable=False
    )
    amount_tax = models.DecimalField(
        _("tax amount"), max_digits=14, decimal_places=2, default=ZERO, editable=False
    )
    amount_total = models.DecimalField(
        _("order total"), max_digits=14, decimal_places=2, default=ZERO, editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(AccessControlledModel.Meta):
        ordering = ["-id"]
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        permissions = [
            ("view_all_orders", "Can see every order, not only their own"),
            ("change_all_orders", "Can change every order, not only their own"),
        ]
        indexes = [models.Index(fields=["salesperson", "-id"]), models.Index(fields=["state"])]

    def __str__(self) -> str:
        return self.number or str(_("new order"))

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
                _("order %(number)s cannot go from %(state)s to %(target)s")
                % {
                    "number": self.number,
                    "state": str(self.get_state_display()).lower(),
                    "target": str(dict(self.STATES)[target]).lower(),
                }
            )

    @property
    def editable(self) -> bool:
        return self.state in self.EDITABLE_STATES

    def compute_totals(self, lines=None) -> None:
        """The order's amounts: the sums of its lines' (each rounded once, per line)."""
        untaxed = tax = ZERO
        for line in self.lines.all() if lines is None else lines:
            untaxed += line.subtotal
            tax += line.tax_amount
        self.amount_untaxed, self.amount_tax = money(untaxed), money(tax)
        self.amount_total = self.amount_untaxed + self.amount_tax
        check_fits(self, "amount_untaxed", "amount_tax", "amount_total")

    def tax_breakdown(self, lines=None) -> list[dict]:
        """Per rate (and name, and included or not): the base and the tax, in the order
        of the rates, largest first. Their sums are the order's untaxed and tax amounts."""
        groups: dict[tuple, dict] = {}
        for line in self.lines.all() if lines is None else lines:
            if not line.priced:
                continue
            key = (line.tax_name, line.tax_rate, line.tax_included)
            group = groups.setdefault(
                key,
                {
                    "name": line.tax_name,
                    "rate": line.tax_rate,
                    "included": line.tax_included,
                    "base": ZERO,
                    "tax": ZERO,
                },
            )
            group["base"] += line.subtotal
            group["tax"] += line.tax_amount
        return sorted(groups.values(), key=lambda g: (-g["rate"], g["name"]))


class OrderLine(AccessControlledModel):
    # A section title or a note sits between lines on the quotation: no amount, no tax.
    ITEM, SECTION, NOTE = "item", "section", "note"
    KINDS = [(ITEM, _("Line")), (SECTION, _("Section title")), (NOTE, _("Note"))]

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    kind = models.CharField(_("kind"), max_length=10, choices=KINDS, default=ITEM)
    product = models.ForeignKey(
        Product, on_delete=models.PROTECT, null=True, blank=True, verbose_name=_("product")
    )
    description = models.CharField(
        _("description"), max_length=300, validators=[validate_single_line]
    )
    quantity = models.DecimalField(
        _("quantity"),
        max_digits=12,
        decimal_places=3,
        default=Decimal("1"),
        validators=[MinValueValidator(Decimal("0.001"))],
    )
    unit_price = models.DecimalField(
        _("unit price"), max_digits=12, decimal_places=2, validators=[MinValueValidator(ZERO)]
    )
    discount = models.DecimalField(
        _("discount (%)"), max_digits=5, decimal_places=2, default=ZERO, validators=PERCENT
    )
    tax = models.ForeignKey(
        Tax,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("tax"),
    )
    # A copy of the tax as it was when the line was written (the table may change later).
    tax_name = models.CharField(max_length=60, blank=True, editable=False)
    tax_rate = models.DecimalField(
        _("tax rate (%)"),
        max_digits=5,
        decimal_places=2,
        default=STANDARD_RATE,
        validators=TAX_RATE,
    )
    tax_included = models.BooleanField(default=False, editable=False)
    subtotal = models.DecimalField(
        _("line subtotal"), max_digits=14, decimal_places=2, default=ZERO, editable=False
    )
    total = models.DecimalField(
        _("line total"), max_digits=14, decimal_places=2, default=ZERO, editable=False
    )

    class Meta(AccessControlledModel.Meta):
        ordering = ["id"]
        verbose_name = _("order line")
        verbose_name_plural = _("order lines")

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
        return self.total - self.subtotal

    @property
    def priced(self) -> bool:
        return self.kind == self.ITEM

    def compute(self) -> None:
        """Round once per line, half up: the untaxed subtotal after the discount, and its
        tax; with a tax included in the price, the total is the rounded price and the
        subtotal is derived from it (so the customer's price never moves by a cent)."""
        if not self.priced:
            self.quantity, self.unit_price, self.discount = Decimal("1"), ZERO, ZERO
            self.tax, self.tax_name, self.tax_rate, self.tax_included = None, "", ZERO, False
            self.subtotal = self.total = ZERO
            return
        rate = Decimal(self.tax_rate)
        after_discount = (
            Decimal(self.quantity) * Decimal(self.unit_price) * (HUNDRED - Decimal(self.discount))
        ) / HUNDRED
        if self.tax_included:
            self.total = money(after_discount)
            self.subtotal = money(self.total * HUNDRED / (HUNDRED + rate))
        else:
            self.subtotal = money(after_discount)
            self.total = self.subtotal + money(self.subtotal * rate / HUNDRED)
        check_fits(self, "subtotal", "total")


class OrderEvent(AccessControlledModel):
    """One step of an order's history (created, changed, sent, opened, answered, ...).

    Written by the services in the same transaction as the change it tells of, so an
    order never changes without its history, and a rolled-back change leaves none.
    Read like the order's lines: only by who may read the order (its record rule)."""

    CREATED, CHANGED, LINE_ADDED, LINE_CHANGED, LINE_REMOVED = (
        "created",
        "changed",
        "line_added",
        "line_changed",
        "line_removed",
    )
    SENT, OPENED, ACCEPTED, DECLINED = "sent", "opened", "accepted", "declined"
    CONFIRMED, CANCELLED, REOPENED = "confirmed", "cancelled", "reopened"
    KINDS = [
        (CREATED, _("Created")),
        (CHANGED, _("Changed")),
        (LINE_ADDED, _("Line added")),
        (LINE_CHANGED, _("Line changed")),
        (LINE_REMOVED, _("Line removed")),
        (SENT, _("Sent")),
        (OPENED, _("Opened by the customer")),
        (ACCEPTED, _("Accepted by the customer")),
        (DECLINED, _("Declined by the customer")),
        (CONFIRMED, _("Confirmed")),
        (CANCELLED, _("Cancelled")),
        (REOPENED, _("Back to quotation")),
    ]

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=20, choices=KINDS)
    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.CharField(max_length=200, editable=False)  # as they were named then
    revision = models.PositiveIntegerField()
    details = models.JSONField(default=dict, blank=True)

    class Meta(AccessControlledModel.Meta):
        ordering = ["-at", "-id"]
        verbose_name = _("order event")
        verbose_name_plural = _("order history")

    @classmethod
    def record_rule(cls, actor, verb):
        return order_rule(actor, "view", "order__")

    def save(self, *args, **kwargs):
        """Append-only, and no right of its own: the services write it for a change the
        access layer has just let the actor make, in that change's transaction."""
        if not self._state.adding:
            raise PermissionDenied("an order's history is not changed")
        models.Model.save(self, *args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionDenied("an order's history is not deleted")

    def changes(self) -> list[tuple[str, str, str]]:
        """(field's name as people read it, before, after) for each changed field."""
        labels = {
            "customer": Order._meta.get_field("customer").verbose_name,
            "currency": Order._meta.get_field("currency").verbose_name,
            "valid_until": Order._meta.get_field("valid_until").verbose_name,
            "description": OrderLine._meta.get_field("description").verbose_name,
            "quantity": OrderLine._meta.get_field("quantity").verbose_name,
            "unit_price": OrderLine._meta.get_field("unit_price").verbose_name,
            "discount": OrderLine._meta.get_field("discount").verbose_name,
            "tax": OrderLine._meta.get_field("tax").verbose_name,
        }
        fields = self.details.get("fields") or {}
        return [(str(labels.get(name, name)), *values) for name, values in fields.items()]


class OrderSequence(models.Model):
    """The gap-free order counter of this tenant: one row, locked while an order takes
    its number, in the same transaction (so a rolled-back order gives its number back)."""

    next_number = models.PositiveIntegerField(default=1)

    def __str__(self) -> str:
        return f"next {self.next_number}"


class QuotationDocument(models.Model):
    """The PDF of one revision of an order, as it was shown and sent to the customer.

    Made once per revision and never changed: its SHA-256 is the digest an acceptance
    names (S9), and the seller can download the very file that was accepted."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="documents")
    revision = models.PositiveIntegerField()
    language = models.CharField(max_length=8, validators=[validate_single_line])
    sha256 = models.CharField(max_length=64, validators=[validate_single_line])
    pdf = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["order", "revision"], name="one_document_per_revision")
        ]

    def __str__(self) -> str:
        return f"order {self.order_id} revision {self.revision}"


class Company(models.Model):
    """The tenant's own company: the block, logo and legal mentions of its documents,
    and the workspace's default language and time zone. One row per database."""

    legal_name = models.CharField(
        _("legal name"), max_length=200, blank=True, validators=[validate_single_line]
    )
    street = models.CharField(
        _("street"), max_length=200, blank=True, validators=[validate_single_line]
    )
    postcode = models.CharField(
        _("postcode"), max_length=20, blank=True, validators=[validate_single_line]
    )
    city = models.CharField(
        _("city"), max_length=100, blank=True, validators=[validate_single_line]
    )
    country = models.CharField(
        _("country"), max_length=2, default="FR", validators=[validate_single_line, COUNTRY_CODE]
    )
    phone = models.CharField(
        _("phone"), max_length=50, blank=True, validators=[validate_single_line]
    )
    email = models.EmailField(_("e-mail"), blank=True)
    siren = models.CharField(
        _("SIREN"), max_length=11, blank=True, validators=[validate_single_line]
    )
    siret = models.CharField(
        _("SIRET"), max_length=17, blank=True, validators=[validate_single_line]
    )
    vat_number = models.CharField(
        _("VAT number"), max_length=20, blank=True, validators=[validate_single_line]
    )
    legal_form = models.CharField(
        _("legal form and capital"),
        max_length=200,
        blank=True,
        help_text=_("e.g. SAS au capital de 10 000 €, RCS Paris"),
        validators=[validate_single_line],
    )
    # The logo, re-encoded as PNG by us (never the uploaded bytes), kept in the tenant's
    # own database: no file name, no path, nothing from the upload reaches a file system.
    logo = models.BinaryField(blank=True, default=b"", editable=False)
    quotation_validity_days = models.PositiveSmallIntegerField(
        _("quotations valid for (days)"),
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(365)],
    )
    payment_terms = models.CharField(
        _("payment terms"),
        max_length=300,
        blank=True,
        default="",
        help_text=_("e.g. 30 days from the invoice date, by bank transfer"),
        validators=[validate_single_line],
    )
    footer = models.TextField(
        _("legal mentions (footer)"),
        max_length=1000,
        blank=True,
        help_text=_("Printed at the bottom of every page of your documents."),
    )
    # Blank: each person's browser decides (Accept-Language) until they choose.
    language = models.CharField(
        _("default language"),
        max_length=8,
        blank=True,
        default="",
        choices=language_choices,
        help_text=_("Blank: the language each person's browser asks for."),
    )
    time_zone = models.CharField(
        _("time zone"), max_length=64, choices=time_zone_choices, default="Europe/Paris"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("company details")
        verbose_name_plural = _("company details")
        permissions = [("manage_company", "Can change the company details and tax table")]

    def __str__(self) -> str:
        return self.legal_name or "company"

    @classmethod
    def current(cls) -> Company:
        """The stored details, or the defaults (unsaved: reading never writes)."""
        return cls.objects.filter(pk=1).first() or cls(pk=1)

    @property
    def address_lines(self) -> list[str]:
        return _address(self.street, self.postcode, self.city, self.country)

    def clean(self):
        from .company import check_siren, check_siret, check_vat_number

        errors = {}
        for name, check in (
            ("siren", check_siren),
            ("siret", check_siret),
            ("vat_number", check_vat_number),
        ):
            value = getattr(self, name)
            if value:
                try:
                    setattr(self, name, check(value))
                except ValidationError as exc:
                    errors[name] = exc.messages
        if not errors and self.siren and self.siret and not self.siret.startswith(self.siren):
            errors["siret"] = [_("The SIRET must start with the SIREN.")]
        if errors:
            raise ValidationError(errors)
