"""Sales pages. Thin: the access layer decides what each user may see and do, the
services do the writes; a row the user may not see is a 404, like a missing one."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy
from django.views.decorators.http import require_GET, require_POST

from oxygis.access.lookups import get_visible_or_404
from oxygis.access.rights import rights
from oxygis.web.views import confirm_page, confirmed

from . import services
from .documents import current_document
from .forms import (
    CompanyForm,
    ContactForm,
    LineEditForm,
    LineForm,
    OrderEditForm,
    OrderForm,
    ProductForm,
    TaxForm,
)
from .listing import export, listing, pick, search_text, wants_csv
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
    if wants_csv(request):
        return export(
            page,
            "contacts.csv",
            [
                (_("Name"), lambda c: c.name),
                (_("Kind"), lambda c: c.get_kind_display()),
                (_("E-mail"), lambda c: c.email),
                (_("Phone"), lambda c: c.phone),
                (_("City"), lambda c: c.city),
                (_("Country"), lambda c: c.country),
                (_("VAT number"), lambda c: c.vat_number),
                (_("Company"), lambda c: c.parent.name if c.parent else ""),
            ],
        )
    context = {"list": page, "can_add": rights(Contact).add}
    return render(request, "sales/contacts.html", context)


def _edit_page(request, model, form_class, pk, *, title_new, saved, back):
    """A contact or product: a form if the actor may write it, else the same fields
    read-only (never a form whose Save would be refused)."""
    row = get_visible_or_404(model, pk=pk) if pk else None
    can_write = rights(row).change if row else rights(model).add
    if request.method == "POST" and not can_write:
        raise PermissionDenied  # the 403 page shows back what was typed
    form = form_class(request.POST or None, instance=row)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, saved % {"name": form.instance.name})
        return redirect(back)
    if not can_write:
        if row is None:
            raise PermissionDenied
        for field in form.fields.values():
            field.disabled = True
    context = {"form": form, "title": row or title_new, "back": back, "read_only": not can_write}
    return render(request, "web/form_page.html", context, status=422 if form.errors else 200)


def contact_edit(request, pk: int | None = None):
    return _edit_page(
        request,
        Contact,
        ContactForm,
        pk,
        title_new=_("New contact"),
        saved=_("Contact %(name)s saved."),
        back="contacts",
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
    if wants_csv(request):
        return export(
            page,
            "products.csv",
            [
                (_("Name"), lambda p: p.name),
                (_("SKU"), lambda p: p.sku),
                (_("Unit price"), lambda p: p.unit_price),
                (_("Tax rate (%)"), lambda p: p.tax_rate),
                (_("Active"), lambda p: _("yes") if p.active else _("no")),
            ],
        )
    context = {"list": page, "can_add": rights(Product).add}
    return render(request, "sales/products.html", context)


def product_edit(request, pk: int | None = None):
    return _edit_page(
        request,
        Product,
        ProductForm,
        pk,
        title_new=_("New product"),
        saved=_("Product %(name)s saved."),
        back="products",
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
    if wants_csv(request):
        return export(
            page,
            "orders.csv",
            [
                (_("Number"), lambda o: o.number),
                (_("Date"), lambda o: timezone.localtime(o.created_at).date().isoformat()),
                (_("Customer"), lambda o: o.customer.name),
                (_("Salesperson"), lambda o: o.salesperson.get_username()),
                (_("State"), lambda o: o.get_state_display()),
                (_("Total excl. tax"), lambda o: o.amount_untaxed),
                (_("Tax"), lambda o: o.amount_tax),
                (_("Total incl. tax"), lambda o: o.amount_total),
                (_("Currency"), lambda o: o.currency),
            ],
        )
    context = {"list": page, "state": state, "states": Order.STATES, "can_add": rights(Order).add}
    return render(request, "sales/orders.html", context)


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
    if not rights(Order).add:
        raise PermissionDenied
    context = _order_form(request, request.POST or None)
    form = context["form"]
    if request.method == "POST" and form.is_valid():
        order = services.create_order(**form.cleaned_data)
        return redirect("order", pk=order.pk)
    return render(request, "sales/order_new.html", context)


def _order_page(request, order, *, status=200, refusal="", **extra):
    """The order's page: what the actor may do with it comes from the access layer."""
    from oxygis.portal.models import OrderLink

    links = list(OrderLink.objects.filter(order_id=order.pk).order_by("-created_at")[:10])
    live = next((link for link in links if not link.revoked_at and not link.response), None)
    answered = [link for link in links if link.response]
    context = {
        "order": order,
        "live_link": live,
        "answered": answered,
        "refusal": refusal,
        "history": list(order.events.all()[:200]),
        **_lines_context(request, order),
        **extra,
    }
    return render(request, "sales/order.html", context, status=status)


def _lines_context(request, order, *, refused=None, editing=None) -> dict:
    """The lines and what may be done to them: ``refused``, the add-a-line form that
    was not accepted (shown again with its errors and what was typed); ``editing``,
    (line, form) of the line being edited in place."""
    can = rights(order)
    can_add = can.change and rights(OrderLine(order=order)).add
    context = refused or (_line_form(request, reverse("order", args=[order.pk])) if can_add else {})
    return {
        "can": can,
        "can_add_line": can_add and order.editable,
        "can_change_line": can.change and order.editable and rights(OrderLine).change,
        "can_remove_line": can.change and order.editable and rights(OrderLine).delete,
        "can_duplicate": rights(Order).add,
        "editing": editing,
        **context,
    }


def order(request, pk: int):
    order = get_visible_or_404(Order.objects.select_related("customer", "salesperson"), pk=pk)
    return _order_page(request, order)


def order_edit(request, pk: int):
    """Change a quotation's customer, currency or validity (draft or sent)."""
    order = get_visible_or_404(Order.objects.select_related("customer", "salesperson"), pk=pk)
    if not rights(order).change:
        raise PermissionDenied
    if not order.editable:
        return _order_page(
            request, order, status=409, refusal=services.not_editable(order).messages[0]
        )
    query = search_text(request.GET.get("customer_q", ""))
    customers, more = pick(Contact.objects.all(), query, CUSTOMER_SEARCH)
    form = OrderEditForm(request.POST or None, instance=order, customers=customers)
    if request.method == "POST" and form.is_valid():
        try:
            services.update_order(
                Order.objects.get(pk=order.pk),
                **{name: form.cleaned_data[name] for name in OrderEditForm.Meta.fields},
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, _("Order %(number)s saved.") % {"number": order.number})
            return redirect("order", pk=order.pk)
    picker = Picker(
        "customer-choices",
        "customer_q",
        reverse("order-edit", args=[order.pk]),
        reverse("customer-pick"),
        _("Find a customer by name, e-mail or city"),
        query,
        more,
        form["customer"],
    )
    status = 422 if form.errors else 200
    context = {"form": form, "picker": picker, "order": order}
    return render(request, "sales/order_edit.html", context, status=status)


@require_POST
def order_duplicate(request, pk: int):
    order = get_visible_or_404(Order, pk=pk)
    if not rights(Order).add:
        raise PermissionDenied
    copy = services.duplicate_order(order)
    messages.success(
        request,
        _("%(copy)s is a new quotation, copied from %(number)s.")
        % {"copy": copy.number, "number": order.number},
    )
    return redirect("order", pk=copy.pk)


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


def _lines_partial(request, order, *, refused=None, editing=None, status=None, refusal=""):
    """The lines and their totals, with the add-a-line form. A form that was not
    accepted comes back with its errors and what was typed, answered 422 (htmx swaps
    it in place: see responseHandling in base.html)."""
    order.refresh_from_db()
    context = _lines_context(request, order, refused=refused, editing=editing)
    if status is None:
        status = 422 if refused or (editing and editing[1].is_bound) else 200
    context = {"order": order, "refusal": refusal, **context}
    return render(request, "sales/_lines.html", context, status=status)


def _refused_lines(request, order, message: str, status: int):
    """A write that could not be made, shown where it was asked (htmx) or on the page."""
    if _htmx(request):
        return _lines_partial(request, order, status=status, refusal=message)
    return _order_page(request, order, status=status, refusal=message)


def _line_input(form, line=None) -> services.LineInput:
    data = form.cleaned_data
    return services.LineInput(
        kind=data.get("kind") or (line.kind if line else OrderLine.ITEM),
        description=data.get("description", ""),
        quantity=data.get("quantity") or 1,
        unit_price=data.get("unit_price") or 0,
        discount=data.get("discount") or 0,
        tax=data.get("tax") or (line.tax if line else None),
        tax_rate=line.tax_rate if line else None,
        product=data.get("product", line.product if line else None),
    )


@require_POST
def line_add(request, pk: int):
    order = get_visible_or_404(Order, pk=pk)
    if not (rights(order).change and rights(OrderLine(order=order)).add):
        raise PermissionDenied
    context = _line_form(request, reverse("order", args=[order.pk]), data=request.POST)
    form = context["line_form"]
    if form.is_valid():
        try:
            services.save_line(order, _line_input(form))
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            form = None
    if _htmx(request):
        return _lines_partial(request, order, refused=None if form is None else context)
    if form is not None:
        return _order_page(request, order, status=422, **context)
    return redirect("order", pk=order.pk)


def line_edit(request, pk: int, line_pk: int):
    """Edit a line in place (htmx: the lines, with this one as a form), or on the order's
    page without JavaScript."""
    order = get_visible_or_404(Order, pk=pk)
    line = get_visible_or_404(OrderLine, pk=line_pk, order=order)
    if not (rights(order).change and rights(line).change):
        raise PermissionDenied
    if not order.editable:
        return _refused_lines(request, order, services.not_editable(order).messages[0], 409)
    form = LineEditForm(request.POST or None, instance=OrderLine.objects.get(pk=line.pk))
    if request.method == "POST" and form.is_valid():
        try:
            services.save_line(order, _line_input(form, line), line=line)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            if _htmx(request):
                return _lines_partial(request, order)
            return redirect("order", pk=order.pk)
    if _htmx(request):
        return _lines_partial(request, order, editing=(line.pk, form))
    status = 422 if form.is_bound else 200
    return _order_page(request, order, status=status, editing=(line.pk, form))


@require_POST
def line_delete(request, pk: int, line_pk: int):
    order = get_visible_or_404(Order, pk=pk)
    line = get_visible_or_404(OrderLine, pk=line_pk, order=order)
    if not (rights(order).change and rights(line).delete):
        raise PermissionDenied
    if not confirmed(request):
        return confirm_page(
            request,
            question=_("Remove the line “%(line)s” from %(number)s?")
            % {"line": line.description, "number": order.number},
            button=_("Remove the line"),
            back=reverse("order", args=[order.pk]),
        )
    try:
        services.delete_line(order, line)
    except ValidationError as exc:
        return _refused_lines(request, order, " ".join(exc.messages), 409)
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
    order = get_visible_or_404(Order.objects.select_related("customer", "salesperson"), pk=pk)
    if action not in TRANSITIONS:
        raise Http404
    if not rights(order).change:
        raise PermissionDenied
    if action == "cancel" and not confirmed(request):
        return confirm_page(
            request,
            question=_(
                "Cancel %(number)s? Its customer's link stops working; you can make it a "
                "quotation again later."
            )
            % {"number": order.number},
            button=_("Cancel the order"),
            back=reverse("order", args=[order.pk]),
        )
    do, done = TRANSITIONS[action]
    try:
        do(order)
    except ValidationError as exc:
        order.refresh_from_db()
        return _order_page(request, order, status=409, refusal=" ".join(exc.messages))
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
