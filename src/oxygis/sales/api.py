"""The JSON API, /api/v1/ (django-ninja). Same access layer as the pages: a row the
caller may not see is a 404, a right they lack a 403. Errors are JSON, never a 500."""

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError
from django.http import Http404
from ninja import Field, NinjaAPI, Query, Router, Schema, Status
from ninja.pagination import LimitOffsetPagination, paginate
from ninja.security import HttpBearer, SessionAuth
from pydantic import field_validator

from oxygis.access.actors import NoActor, ReadOnlyActor, bind_actor_for_request
from oxygis.access.lookups import get_visible_or_404
from oxygis.accounts.apikeys import KeyRefused, authenticate_token
from oxygis.accounts.models import ApiKey
from oxygis.audit import accesslog
from oxygis.core import limiter
from oxygis.core.converters import MAX_ID

from . import services
from .models import Contact, IllegalTransition, Order, Product, Tax


class ApiKeyAuth(HttpBearer):
    """``Authorization: Bearer oxy_...``: acts as the key's user; a read-scoped key
    cannot write (its actor has no write right)."""

    def authenticate(self, request, token):
        address = limiter.client_address(request)
        # A guessed key costs the address a token of the shared limiter (S12); an
        # address that ran dry is refused before the key is even looked up.
        limiter.check(limiter.SECRET_CHECKS, address)
        key = authenticate_token(token)
        if key is None:
            limiter.take(limiter.SECRET_CHECKS, address)
            return None
        request.user = key.user
        accesslog.note(request, api_key_id=key.pk)
        bind_actor_for_request(
            key.user if key.scope == ApiKey.READ_WRITE else ReadOnlyActor(key.user)
        )
        return key


api = NinjaAPI(
    title="Oxygis API",
    version="1",
    urls_namespace="api-v1",
    docs_url=None,  # the interactive docs load scripts from elsewhere: not under our CSP
    auth=[ApiKeyAuth(), SessionAuth()],
)


def _error(request, status: int, detail):
    return api.create_response(request, {"detail": detail}, status=status)


@api.exception_handler(PermissionDenied)
def _forbidden(request, exc):
    if isinstance(exc, NoActor):
        return _error(request, 401, "Authentication required.")
    return _error(request, 403, str(exc) or "Forbidden.")


@api.exception_handler(KeyRefused)
def _key_refused(request, exc):
    return _error(request, 403, str(exc))


@api.exception_handler(limiter.RateLimited)
def _rate_limited(request, exc):
    return limiter.limited_response(request, exc)


@api.exception_handler(Http404)
def _not_found(request, exc):
    return _error(request, 404, "Not found.")


@api.exception_handler(IllegalTransition)
def _conflict(request, exc):
    return _error(request, 409, " ".join(exc.messages))


@api.exception_handler(ValidationError)
def _invalid(request, exc):
    detail = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
    return _error(request, 400, detail)


@api.exception_handler(IntegrityError)
def _integrity(request, exc):
    return _error(request, 409, "This conflicts with existing data.")


# --- schemas ------------------------------------------------------------------------
class Input(Schema):
    """Base of every request body: text may not hold NUL characters (PostgreSQL cannot
    store them; refused here as a 422 rather than failing in the database)."""

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value):
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("text may not contain NUL characters")
        return value


Money = Decimal
Id = Annotated[int, Field(ge=1, le=MAX_ID)]


class Pagination(LimitOffsetPagination):
    """Limit and offset with bounds (an unbounded offset overflows the database)."""

    class Input(Schema):
        limit: int = Field(50, ge=1, le=200)
        offset: int = Field(0, ge=0, le=10_000_000)


class ContactIn(Input):
    kind: Literal["company", "person"] = "company"
    name: str = Field(..., min_length=1, max_length=200)
    email: str = Field("", max_length=254)
    phone: str = Field("", max_length=50)
    street: str = Field("", max_length=200)
    postcode: str = Field("", max_length=20)
    city: str = Field("", max_length=100)
    country: str = Field("", max_length=2)
    parent_id: Id | None = None


class ContactPatch(Input):
    kind: Literal["company", "person"] | None = None
    name: str | None = Field(None, min_length=1, max_length=200)
    email: str | None = Field(None, max_length=254)
    phone: str | None = Field(None, max_length=50)
    street: str | None = Field(None, max_length=200)
    postcode: str | None = Field(None, max_length=20)
    city: str | None = Field(None, max_length=100)
    country: str | None = Field(None, max_length=2)
    parent_id: Id | None = None


class ContactOut(ContactIn):
    id: int


class ProductIn(Input):
    name: str = Field(..., min_length=1, max_length=200)
    sku: str = Field(..., min_length=1, max_length=64)
    unit_price: Money = Field(..., ge=0, max_digits=12, decimal_places=2)
    tax_rate: Money = Field(Decimal("20.00"), ge=0, le=100, max_digits=5, decimal_places=2)
    active: bool = True


class ProductPatch(Input):
    name: str | None = Field(None, min_length=1, max_length=200)
    sku: str | None = Field(None, min_length=1, max_length=64)
    unit_price: Money | None = Field(None, ge=0, max_digits=12, decimal_places=2)
    tax_rate: Money | None = Field(None, ge=0, le=100, max_digits=5, decimal_places=2)
    active: bool | None = None


class ProductOut(ProductIn):
    id: int


class LineIn(Input):
    kind: Literal["item", "section", "note"] = "item"
    product_id: Id | None = None
    description: str = Field("", max_length=300)
    quantity: Decimal = Field(Decimal("1"), gt=0, max_digits=12, decimal_places=3)
    unit_price: Money | None = Field(None, ge=0, max_digits=12, decimal_places=2)
    tax_rate: Money | None = Field(None, ge=0, le=100, max_digits=5, decimal_places=2)
    discount: Money = Field(Decimal("0"), ge=0, le=100, max_digits=5, decimal_places=2)


class LineOut(Schema):
    id: int
    kind: str
    product_id: int | None
    description: str
    quantity: Decimal
    unit_price: Money
    discount: Money
    tax_rate: Money
    subtotal: Money
    total: Money


class OrderIn(Input):
    customer_id: Id
    salesperson_id: Id | None = None
    currency: str = Field("EUR", pattern=r"^[A-Za-z]{3}$")
    lines: list[LineIn] = Field(default_factory=list, max_length=500)


class OrderPatch(Input):
    customer_id: Id | None = None
    currency: str | None = Field(None, pattern=r"^[A-Za-z]{3}$")


class OrderOut(Schema):
    id: int
    number: str
    customer_id: Id
    salesperson_id: int
    currency: str
    state: str
    confirmed_at: datetime | None
    confirmation_channel: str
    revision: int
    valid_until: date | None
    amount_untaxed: Money
    amount_tax: Money
    amount_total: Money
    lines: list[LineOut]

    @staticmethod
    def resolve_lines(order):
        return list(order.lines.all())


# --- helpers --------------------------------------------------------------------------
def _line_input(data: LineIn) -> services.LineInput:
    if data.kind != "item":  # a section title or a note: its text only
        if not data.description:
            raise ValidationError("a section or note needs a description")
        return services.LineInput(
            kind=data.kind, description=data.description, quantity=1, unit_price=0
        )
    product = get_visible_or_404(Product, pk=data.product_id) if data.product_id else None
    if product is None and (not data.description or data.unit_price is None):
        raise ValidationError("a line without a product needs a description and a unit_price")
    return services.LineInput(
        description=data.description or product.name,
        quantity=data.quantity,
        unit_price=data.unit_price if data.unit_price is not None else product.unit_price,
        tax_rate=data.tax_rate,
        discount=data.discount,
        product=product,
    )


def _apply(instance, values: dict):
    for name, value in values.items():
        setattr(instance, name, value)
    instance.full_clean()
    instance.save()
    return instance


# --- contacts ------------------------------------------------------------------------
contacts = Router(tags=["contacts"])


@contacts.get("", response=list[ContactOut])
@paginate(Pagination)
def list_contacts(request, q: str = Query("", max_length=100, pattern=r"^[^\x00]*$")):
    queryset = Contact.objects.all()
    return queryset.filter(name__icontains=q) if q else queryset


@contacts.get("/{id:contact_id}", response=ContactOut)
def get_contact(request, contact_id: Id):
    return get_visible_or_404(Contact, pk=contact_id)


def _parent(values: dict) -> dict:
    if values.get("parent_id") is not None:
        values["parent"] = get_visible_or_404(Contact, pk=values.pop("parent_id"))
    else:
        values.pop("parent_id", None)
    return values


@contacts.post("", response={201: ContactOut})
def create_contact(request, data: ContactIn):
    return Status(201, _apply(Contact(), _parent(data.dict())))


@contacts.patch("/{id:contact_id}", response=ContactOut)
def update_contact(request, contact_id: Id, data: ContactPatch):
    contact = get_visible_or_404(Contact, pk=contact_id)
    return _apply(contact, _parent(data.dict(exclude_unset=True)))


# --- products ------------------------------------------------------------------------
products = Router(tags=["products"])


@products.get("", response=list[ProductOut])
@paginate(Pagination)
def list_products(
    request, q: str = Query("", max_length=100, pattern=r"^[^\x00]*$"), active: bool | None = None
):
    queryset = Product.objects.all()
    if q:
        queryset = queryset.filter(name__icontains=q)
    return queryset if active is None else queryset.filter(active=active)


@products.get("/{id:product_id}", response=ProductOut)
def get_product(request, product_id: Id):
    return get_visible_or_404(Product, pk=product_id)


@products.post("", response={201: ProductOut})
def create_product(request, data: ProductIn):
    return Status(201, _apply(Product(), _product_tax(data.dict())))


@products.patch("/{id:product_id}", response=ProductOut)
def update_product(request, product_id: Id, data: ProductPatch):
    product = get_visible_or_404(Product, pk=product_id)
    return _apply(product, _product_tax(data.dict(exclude_unset=True)))


def _product_tax(values: dict) -> dict:
    # The API speaks rates; the product points at the table's tax of that rate, if any.
    if values.get("tax_rate") is not None:
        values["tax"] = Tax.for_rate(values["tax_rate"])
    return values


# --- orders --------------------------------------------------------------------------
orders = Router(tags=["orders"])
STATES = Literal["draft", "sent", "confirmed", "declined", "cancelled"]


@orders.get("", response=list[OrderOut])
@paginate(Pagination)
def list_orders(
    request,
    state: STATES | None = None,
    customer_id: Id | None = None,
    q: str = Query("", max_length=100, pattern=r"^[^\x00]*$"),
):
    queryset = Order.objects.prefetch_related("lines")
    if state:
        queryset = queryset.filter(state=state)
    if customer_id is not None:
        queryset = queryset.filter(customer_id=customer_id)
    return queryset.filter(number__icontains=q) if q else queryset


def _order_out(order_id: int) -> Order:
    """The order as the response shows it, its lines read here: never lazily while the
    response is serialized, where a database failure (a failover) would surface as a
    schema error, a 500, instead of the outage's 503. Read again through the access
    layer after a write."""
    return get_visible_or_404(Order.objects.prefetch_related("lines"), pk=order_id)


@orders.get("/{id:order_id}", response=OrderOut)
def get_order(request, order_id: Id):
    return _order_out(order_id)


@orders.post("", response={201: OrderOut})
def create_order(request, data: OrderIn):
    from django.contrib.auth import get_user_model

    customer = get_visible_or_404(Contact, pk=data.customer_id)
    salesperson = (
        get_visible_or_404(get_user_model(), pk=data.salesperson_id, is_active=True)
        if data.salesperson_id
        else request.user
    )
    order = services.create_order(
        customer=customer,
        salesperson=salesperson,
        currency=data.currency,
        lines=[_line_input(line) for line in data.lines],
    )
    return Status(201, _order_out(order.pk))


@orders.patch("/{id:order_id}", response=OrderOut)
def update_order(request, order_id: Id, data: OrderPatch):
    order = get_visible_or_404(Order, pk=order_id)
    values = data.dict(exclude_unset=True)
    if values.get("customer_id") is not None:
        values["customer"] = get_visible_or_404(Contact, pk=values.pop("customer_id"))
    values.pop("customer_id", None)
    if values.get("currency"):
        values["currency"] = values["currency"].upper()
    services.update_order(order, **{k: v for k, v in values.items() if v is not None})
    return _order_out(order.pk)


@orders.post("/{id:order_id}/lines", response={201: OrderOut})
def add_line(request, order_id: Id, data: LineIn):
    order = get_visible_or_404(Order, pk=order_id)
    services.save_line(order, _line_input(data))
    return Status(201, _order_out(order.pk))


@orders.post("/{id:order_id}/confirm", response=OrderOut)
def confirm_order(request, order_id: Id):
    services.confirm_order(get_visible_or_404(Order, pk=order_id), channel="api")
    return _order_out(order_id)


@orders.post("/{id:order_id}/cancel", response=OrderOut)
def cancel_order(request, order_id: Id):
    services.cancel_order(get_visible_or_404(Order, pk=order_id))
    return _order_out(order_id)


api.add_router("/contacts", contacts)
api.add_router("/products", products)
api.add_router("/orders", orders)
