from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.utils.text import format_lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .company import LOGO_MAX_BYTES, clean_logo
from .models import Company, Contact, Order, OrderLine, Product, Tax


def offer(field: forms.ModelChoiceField, rows, selected, empty_label: str) -> None:
    """Offer ``rows`` (a bounded search result) as the field's choices, with the row
    already selected, if any: the page lists these only, whatever the table's size,
    while the field still accepts any row of its queryset."""
    shown = list(rows)
    if selected not in (None, "") and all(str(row.pk) != str(selected) for row in shown):
        try:
            current = field.clean(selected)
        except ValidationError:
            current = None  # not a row this user may choose: the form says so on submit
        if current is not None:
            shown.insert(0, current)
    choices = [("", empty_label)] + [(row.pk, field.label_from_instance(row)) for row in shown]
    field.widget = forms.RadioSelect(choices=choices)


class ContactForm(forms.ModelForm):
    class Meta:
        model = Contact
        fields = [
            "kind",
            "name",
            "email",
            "phone",
            "vat_number",
            "street",
            "postcode",
            "city",
            "country",
            "delivery_street",
            "delivery_postcode",
            "delivery_city",
            "delivery_country",
            "language",
            "parent",
        ]


def _taxes(field, current=None):
    """The active taxes, and the one already chosen even if it was retired since."""
    rows = Tax.objects.filter(active=True)
    if current is not None:
        rows = Tax.objects.filter(pk=current.pk) | rows
    field.queryset = rows.order_by("-rate", "name")
    field.empty_label = None


class ProductForm(forms.ModelForm):
    class Meta:
        model = Product
        fields = ["name", "sku", "unit_price", "tax", "active"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _taxes(self.fields["tax"], self.instance.tax if self.instance.tax_id else None)
        self.fields["tax"].required = True  # Product.save copies its rate


class OrderForm(forms.ModelForm):
    class Meta:
        model = Order
        fields = ["customer", "salesperson", "currency", "valid_until"]
        widgets = {"valid_until": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")}

    def __init__(self, *args, actor=None, customers=(), **kwargs):
        """``customers``: the ones to offer (a picker's search result), not every contact."""
        super().__init__(*args, **kwargs)
        selected = self.data.get(self.add_prefix("customer")) if self.is_bound else None
        offer(self.fields["customer"], customers, selected, _("Choose a customer"))
        # Only people with a sales role can be salespeople; a salesperson's own orders
        # are theirs (the access layer refuses anything else anyway).
        people = (
            get_user_model()
            .objects.filter(is_active=True)
            .filter(groups__permissions__codename="add_order")
            .distinct()
            .order_by("username")
        )
        self.fields["salesperson"].queryset = people
        if actor is not None and not actor.has_perm("sales.change_all_orders"):
            self.fields["salesperson"].queryset = people.filter(pk=actor.pk)
            self.fields["salesperson"].initial = actor.pk
        self.fields["currency"].widget.attrs["maxlength"] = 3

    def clean_currency(self):
        value = self.cleaned_data["currency"].upper()
        if len(value) != 3 or not value.isalpha():
            raise forms.ValidationError(_("Use a 3-letter ISO 4217 code, e.g. EUR."))
        return value


class OrderEditForm(forms.ModelForm):
    """A quotation's customer, currency and validity (its lines are edited in place)."""

    class Meta:
        model = Order
        fields = ["customer", "currency", "valid_until"]
        widgets = {"valid_until": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")}

    def __init__(self, *args, customers=(), **kwargs):
        super().__init__(*args, **kwargs)
        selected = (
            self.data.get(self.add_prefix("customer"))
            if self.is_bound
            else self.instance.customer_id
        )
        offer(self.fields["customer"], customers, selected, _("Choose a customer"))
        self.fields["currency"].widget.attrs["maxlength"] = 3

    clean_currency = OrderForm.clean_currency


class LineEditForm(forms.ModelForm):
    """A line changed in place: a priced line's figures, or a section's or note's text."""

    class Meta:
        model = OrderLine
        fields = ["description", "quantity", "unit_price", "discount", "tax"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.instance.priced:
            for name in ("quantity", "unit_price", "discount", "tax"):
                del self.fields[name]
            return
        _taxes(self.fields["tax"], self.instance.tax if self.instance.tax_id else None)
        self.fields["tax"].required = self.instance.product_id is None
        self.fields["tax"].empty_label = _("The product's own tax")


class LineForm(forms.ModelForm):
    class Meta:
        model = OrderLine
        fields = ["kind", "product", "description", "quantity", "unit_price", "discount", "tax"]

    def __init__(self, *args, products=(), **kwargs):
        """``products``: the ones to offer (a picker's search result), not the catalogue."""
        super().__init__(*args, **kwargs)
        self.fields["product"].queryset = Product.objects.filter(active=True)
        selected = self.data.get(self.add_prefix("product")) if self.is_bound else None
        offer(self.fields["product"], products, selected, _("No product: describe the line"))
        self.fields["description"].required = False
        self.fields["unit_price"].required = False
        self.fields["discount"].required = False
        self.fields["discount"].initial = None  # blank: no discount
        _taxes(self.fields["tax"])
        # Blank means "the product's own tax" (or none without a product).
        self.fields["tax"].required = False
        self.fields["tax"].empty_label = _("The product's own tax")
        self.fields["quantity"].initial = 1
        self.fields["kind"].required = False  # a priced line unless said otherwise
        self.fields["kind"].initial = OrderLine.ITEM

    def clean(self):
        data = super().clean()
        data["kind"] = data.get("kind") or OrderLine.ITEM
        if data["kind"] != OrderLine.ITEM:
            # A section title or a note: its text only, whatever else was typed.
            self.errors.pop("product", None)
            for name in ("quantity", "unit_price", "discount", "tax"):
                self.errors.pop(name, None)
            data["product"] = None
            if not data.get("description"):
                self.add_error("description", _("Write the text of the section or note."))
            return data
        product = data.get("product")
        if product is None and not data.get("description"):
            raise forms.ValidationError(_("Choose a product or describe the line."))
        if product is None and data.get("tax") is None:
            # A forgotten tax would quietly bill 0 %: a free line names its tax.
            self.add_error("tax", _("Choose the tax of a line without a product."))
        if data.get("unit_price") is None:
            if product is None:
                self.add_error("unit_price", _("A line without a product needs a price."))
            else:
                data["unit_price"] = product.unit_price
        if data.get("discount") is None:
            data["discount"] = 0
        if not data.get("description") and product is not None:
            data["description"] = product.name
        return data


class CompanyForm(forms.ModelForm):
    logo_upload = forms.FileField(
        label=gettext_lazy("Logo"),
        required=False,
        help_text=format_lazy(
            gettext_lazy("PNG, JPEG, GIF or WebP, at most {} KB."), LOGO_MAX_BYTES // 1024
        ),
        widget=forms.ClearableFileInput(
            attrs={"accept": "image/png,image/jpeg,image/gif,image/webp"}
        ),
    )
    remove_logo = forms.BooleanField(label=gettext_lazy("Remove the logo"), required=False)

    class Meta:
        model = Company
        fields = [
            "legal_name",
            "legal_form",
            "street",
            "postcode",
            "city",
            "country",
            "phone",
            "email",
            "siren",
            "siret",
            "vat_number",
            "quotation_validity_days",
            "payment_terms",
            "footer",
            "language",
            "time_zone",
        ]
        widgets = {"footer": forms.Textarea(attrs={"rows": 3})}

    def clean_logo_upload(self):
        upload = self.cleaned_data.get("logo_upload")
        return clean_logo(upload) if upload else None


class TaxForm(forms.ModelForm):
    class Meta:
        model = Tax
        fields = ["name", "rate", "included", "active"]
