from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from .models import Contact, Order, OrderLine, Product


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
            "street",
            "postcode",
            "city",
            "country",
            "parent",
        ]


class ProductForm(forms.ModelForm):
    class Meta:
        model = Product
        fields = ["name", "sku", "unit_price", "tax_rate", "active"]


class OrderForm(forms.ModelForm):
    class Meta:
        model = Order
        fields = ["customer", "salesperson", "currency"]

    def __init__(self, *args, actor=None, customers=(), **kwargs):
        """``customers``: the ones to offer (a picker's search result), not every contact."""
        super().__init__(*args, **kwargs)
        selected = self.data.get(self.add_prefix("customer")) if self.is_bound else None
        offer(self.fields["customer"], customers, selected, "Choose a customer")
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
            raise forms.ValidationError("Use a 3-letter ISO 4217 code, e.g. EUR.")
        return value


class LineForm(forms.ModelForm):
    class Meta:
        model = OrderLine
        fields = ["product", "description", "quantity", "unit_price", "tax_rate"]

    def __init__(self, *args, products=(), **kwargs):
        """``products``: the ones to offer (a picker's search result), not the catalogue."""
        super().__init__(*args, **kwargs)
        self.fields["product"].queryset = Product.objects.filter(active=True)
        selected = self.data.get(self.add_prefix("product")) if self.is_bound else None
        offer(self.fields["product"], products, selected, "No product: describe the line")
        self.fields["description"].required = False
        self.fields["unit_price"].required = False
        self.fields["tax_rate"].required = False
        # Blank means "the product's own rate" (or 0 without a product), not 21%.
        self.fields["tax_rate"].initial = None
        self.fields["quantity"].initial = 1

    def clean(self):
        data = super().clean()
        product = data.get("product")
        if product is None and not data.get("description"):
            raise forms.ValidationError("Choose a product or describe the line.")
        if data.get("unit_price") is None:
            if product is None:
                self.add_error("unit_price", "A line without a product needs a price.")
            else:
                data["unit_price"] = product.unit_price
        if data.get("tax_rate") is None:
            data["tax_rate"] = product.tax_rate if product else 0
        if not data.get("description") and product is not None:
            data["description"] = product.name
        return data
