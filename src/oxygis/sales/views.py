"""Sales pages. Thin: the access layer decides what each user may see and do, the
services do the writes; a row the user may not see is a 404, like a missing one."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from oxygis.access.lookups import get_visible_or_404

from . import services
from .forms import ContactForm, LineForm, OrderForm, ProductForm
from .listing import listing, pick, search_text
from .models import Contact, Order, OrderLine, Product


def _htmx(request) -> bool:
    return request.headers.get("HX-Request") == "true"


# --- contacts and products ------------------------------------------------------------
def contacts(request):
    page = listing(
        request,
        Contact.objects.select_related("parent"),
        search=["name", "email", "city"],
        sorts={
            "name": ("name", "Name"),
            "city": ("city", "City"),
            "created": ("created_at", "Created"),
        },
        default="name",
    )
    return render(request, "sales/contacts.html", {"list": page})


def contact_edit(request, pk: int | None = None):
    contact = get_visible_or_404(Contact, pk=pk) if pk else None
    form = ContactForm(request.POST or None, instance=contact)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"Contact {form.instance.name} saved.")
        return redirect("contacts")
    return render(
        request,
        "web/form_page.html",
        {"form": form, "title": contact or "New contact", "back": "contacts"},
    )


def products(request):
    page = listing(
        request,
        Product.objects.all(),
        search=["name", "sku"],
        sorts={
            "name": ("name", "Name"),
            "sku": ("sku", "SKU"),
            "price": ("unit_price", "Unit price"),
        },
        default="name",
    )
    return render(request, "sales/products.html", {"list": page})


def product_edit(request, pk: int | None = None):
    product = get_visible_or_404(Product, pk=pk) if pk else None
    form = ProductForm(request.POST or None, instance=product)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"Product {form.instance.name} saved.")
        return redirect("products")
    return render(
        request,
        "web/form_page.html",
        {"form": form, "title": product or "New product", "back": "products"},
    )


# --- orders -----------------------------------------------------------------------------
def orders(request):
    queryset = Order.objects.select_related("customer", "salesperson")
    state = request.GET.get("state", "")
    if state in dict(Order.STATES):
        queryset = queryset.filter(state=state)
    page = listing(
        request,
        queryset,
        search=["number", "customer__name"],
        sorts={
            "number": ("id", "Number"),
            "customer": ("customer__name", "Customer"),
            "total": ("amount_total", "Total"),
            "date": ("created_at", "Date"),
        },
        default="-number",
    )
    return render(
        request, "sales/orders.html", {"list": page, "state": state, "states": Order.STATES}
    )


@dataclass
class Picker:
    """A searchable choice (htmx, bounded results) in place of a list of every row."""

    id: str  # of the element the matches replace
    param: str  # the query-string parameter of the search
    page: str  # where the search goes without JavaScript
    source: str  # the fragment of matches, for htmx
    placeholder: str
    query: str
    more: bool  # more rows match than are shown
    field: object  # the form's bound field


PRODUCT_SEARCH = ["name", "sku"]
CUSTOMER_SEARCH = ["name", "email", "city"]


def _line_form(request, page: str = "", data=None) -> dict:
    """The add-a-line form, offering the products that match ?product_q= (at most
    PICK_LIMIT: the page is the same size with 10 or 10,000 products)."""
    query = search_text(request.GET.get("product_q", ""))
    products, more = pick(Product.objects.filter(active=True), query, PRODUCT_SEARCH)
    form = LineForm(data, products=products)
    picker = Picker(
        "product-choices",
        "product_q",
        page,
        reverse("product-pick"),
        "Find a product by name or SKU",
        query,
        more,
        form["product"],
    )
    return {"line_form": form, "picker": picker}


def _order_form(request, data=None) -> dict:
    query = search_text(request.GET.get("customer_q", ""))
    customers, more = pick(Contact.objects.all(), query, CUSTOMER_SEARCH)
    form = OrderForm(data, actor=request.user, customers=customers)
    picker = Picker(
        "customer-choices",
        "customer_q",
        reverse("order-new"),
        reverse("customer-pick"),
        "Find a customer by name, e-mail or city",
        query,
        more,
        form["customer"],
    )
    return {"form": form, "picker": picker}


def order_new(request):
    context = _order_form(request, request.POST or None)
    form = context["form"]
    if request.method == "POST" and form.is_valid():
        order = services.create_order(**form.cleaned_data)
        return redirect("order", pk=order.pk)
    return render(request, "sales/order_new.html", context)


def order(request, pk: int):
    order = get_visible_or_404(Order.objects.select_related("customer", "salesperson"), pk=pk)
    context = _line_form(request, reverse("order", args=[order.pk]))
    return render(request, "sales/order.html", {"order": order, **context})


def product_pick(request):
    """The product picker's matches for what was typed (an htmx fragment)."""
    return render(request, "sales/_choices.html", _line_form(request))


def customer_pick(request):
    """The customer picker's matches for what was typed (an htmx fragment)."""
    return render(request, "sales/_choices.html", _order_form(request))


def _lines_partial(request, order, refused=None):
    """The lines and their totals, with the add-a-line form: ``refused``, the context of
    a form that was not accepted (shown again with its errors, answered 422)."""
    order.refresh_from_db()
    context = refused or _line_form(request, reverse("order", args=[order.pk]))
    status = 200 if refused is None else 422
    return render(request, "sales/_lines.html", {"order": order, **context}, status=status)


@require_POST
def line_add(request, pk: int):
    order = get_visible_or_404(Order, pk=pk)
    context = _line_form(request, reverse("order", args=[order.pk]), data=request.POST)
    form = context["line_form"]
    if form.is_valid():
        try:
            services.save_line(
                order,
                services.LineInput(
                    description=form.cleaned_data["description"],
                    quantity=form.cleaned_data["quantity"],
                    unit_price=form.cleaned_data["unit_price"],
                    tax_rate=form.cleaned_data["tax_rate"],
                    product=form.cleaned_data["product"],
                ),
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            form = None
    if _htmx(request):
        return _lines_partial(request, order, refused=None if form is None else context)
    if form is not None:
        messages.error(
            request,
            " ".join(str(e) for e in form.non_field_errors())
            or "The line was not added: check its fields.",
        )
    return redirect("order", pk=order.pk)


@require_POST
def line_delete(request, pk: int, line_pk: int):
    order = get_visible_or_404(Order, pk=pk)
    line = get_visible_or_404(OrderLine, pk=line_pk, order=order)
    try:
        services.delete_line(order, line)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    if _htmx(request):
        return _lines_partial(request, order)
    return redirect("order", pk=order.pk)


TRANSITIONS = {
    "send": (services.mark_sent, "marked as sent"),
    "confirm": (services.confirm_order, "confirmed"),
    "cancel": (services.cancel_order, "cancelled"),
    "draft": (services.reset_to_draft, "back to quotation"),
}


@require_POST
def order_transition(request, pk: int, action: str):
    order = get_visible_or_404(Order, pk=pk)
    if action not in TRANSITIONS:
        return redirect("order", pk=order.pk)
    do, done = TRANSITIONS[action]
    try:
        do(order)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Order {order.number} {done}.")
    return redirect("order", pk=order.pk)
