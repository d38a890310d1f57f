"""Template filters for amounts, quantities, rates and dates in the reader's locale and
time zone (Babel, see core/i18n.py): ``{{ order.amount_total|money:order.currency }}``."""

from django import template

from oxygis.core import i18n

register = template.Library()


@register.filter
def money(value, currency="EUR"):
    return i18n.format_money(value, currency)


@register.filter
def number(value, digits=3):
    return i18n.format_number(value, int(digits))


@register.filter
def percent(value):
    return i18n.format_percent(value)


@register.filter
def day(value, format="medium"):
    return i18n.format_date(value, format)


@register.filter
def when(value, format="medium"):
    return i18n.format_datetime(value, format)
