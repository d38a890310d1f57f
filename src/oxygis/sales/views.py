"""Sales pages. Thin: the access layer decides what each user may see and do, the
services do the writes; a row the user may not see is a 404, like a missing one."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy
from django.views.decorators.http import require_GET, require_POST

from oxygis.access.lookups import get_visible_or_404

from . import services
from .documents import current_document
from .forms import CompanyForm, ContactForm, LineForm, OrderForm, ProductForm, TaxForm
from .listing import listing, pick, search_text
from .models import Company, Contact, Order, OrderLine, Product, QuotationDocument, Tax


def _htmx(request) -> bool:
    return request.headers.get("HX-Request") == "true"


# --- contacts and products ------------------------------------------------------------
def contacts(request):
    page = listing(
        request,
        Contact.objects.select_related("parent"),
        search=["name", "email", "city"],
        sorts={
            "name": ("name", _("Name")),
            "city": ("city", _("City")),
            "created": ("created_at", _("Created")),
        },
        default="name",
    )
    return render(request, "sales/contacts.html", {"list": page})


def contact_edit(request, pk: int | None = None):
    contact = get_visible_or_404(Contact, pk=pk) if pk else None
    form = ContactForm(request.POST or None, instance=contact)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, _("Contact %(name)s saved.") % {"name": form.instance.name})
        return redirect("contacts")
    return render(
        request,
        "web/form_page.html",
        {"form": form, "title": contact or _("New contact"), "back": "contacts"},
    )


def products(request):
    page = listing(
        request,
        Product.objects.all(),
        search=["name", "sku"],
        sorts={
            "name": ("name", _("Name")),
            "sku": ("sku", _("SKU")),
            "price": ("unit_price", _("Unit price")),
        },
        default="name",
    )
    return render(request, "sales/products.html", {"list": page})


def product_edit(request, pk: int | None = None):
    product = get_visible_or_404(Product, pk=pk) if pk else None
    form = ProductForm(request.POST or None, instance=product)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, _("Product %(name)s saved.") % {"name": form.instance.name})
        return redirect("products")
    return render(
        request,
        "web/form_page.html",
        {"form": form, "title": product or _("New product"), "back": "products"},
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
            "number": ("id", _("Number")),
            "customer": ("customer__name", _("Customer")),
            "total": ("amount_total", _("Total")),
            "date": ("created_at", _("Date")),
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
        _("Find a product by name or SKU"),
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
        _("Find a customer by name, e-mail or city"),
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
    from oxygis.portal.models import OrderLink

    links = list(OrderLink.objects.filter(order_id=order.pk).order_by("-created_at")[:10])
    live = next((link for link in links if not link.revoked_at and not link.response), None)
    answered = [link for link in links if link.response]
    return render(
        request,
        "sales/order.html",
        {"order": order, "live_link": live, "answered": answered, **context},
    )


@require_GET
def order_pdf(request, pk: int):
    """The quotation's PDF: the current revision's, or ``?revision=N``'s if it was made
    (sent or shown to the customer), so the seller can file exactly what was accepted."""
    order = get_visible_or_404(Order.objects.select_related("customer", "salesperson"), pk=pk)
    wanted = request.GET.get("revision", "")
    if wanted:
        if not wanted.isdigit() or len(wanted) > 9:
            raise Http404
        document = QuotationDocument.objects.filter(order_id=order.pk, revision=int(wanted)).first()
        if document is None:
            raise Http404
    else:
        document = current_document(order)
    from oxygis.portal.views import pdf_response

    return pdf_response(document, order.number)


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
                    discount=form.cleaned_data["discount"],
                    tax=form.cleaned_data["tax"],
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
            or _("The line was not added: check its fields."),
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
    "send": (services.mark_sent, _lazy("Order %(number)s marked as sent.")),
    "confirm": (services.confirm_order, _lazy("Order %(number)s confirmed.")),
    "cancel": (services.cancel_order, _lazy("Order %(number)s cancelled.")),
    "draft": (services.reset_to_draft, _lazy("Order %(number)s is a quotation again.")),
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
        messages.success(request, str(done) % {"number": order.number})
    return redirect("order", pk=order.pk)


# --- company details and tax table (administrators) -------------------------------------
@permission_required("sales.manage_company", raise_exception=True)
def company(request):
    current = Company.current()
    form = CompanyForm(request.POST or None, request.FILES or None, instance=current)
    if request.method == "POST" and form.is_valid():
        services.save_company(request, form)
        messages.success(request, _("Company details saved."))
        return redirect("company")
    return render(
        request,
        "sales/company.html",
        {"form": form, "company": current, "taxes": Tax.objects.all()},
    )


@permission_required("sales.manage_company", raise_exception=True)
@require_GET
def company_logo(request):
    """The logo, from the tenant's database: no file name or path from anyone's input."""
    logo = bytes(Company.current().logo)
    if not logo:
        raise Http404
    response = HttpResponse(logo, content_type="image/png")
    response["Content-Disposition"] = 'inline; filename="logo.png"'
    response["Cache-Control"] = "private, no-cache"
    return response


@permission_required("sales.manage_company", raise_exception=True)
def tax_edit(request, pk: int | None = None):
    tax = get_visible_or_404(Tax, pk=pk) if pk else None
    form = TaxForm(request.POST or None, instance=tax)
    if request.method == "POST" and form.is_valid():
        services.save_tax(request, form)
        messages.success(request, _("Tax %(name)s saved.") % {"name": form.instance.name})
        return redirect("company")
    return render(
        request,
        "web/form_page.html",
        {"form": form, "title": tax or _("New tax"), "back": "company"},
    )
