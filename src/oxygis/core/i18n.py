"""Languages, time zones and the formats of numbers, amounts and dates.

Formats come from Babel (CLDR), never by hand: "2 021,81 €" in French, "€2,021.81" in
English, each with the separators and spaces of its locale. Every function formats in
the active language (django.utils.translation) and time zone (django.utils.timezone),
which the locale middleware sets per request from the user, the company, then the
browser."""

from __future__ import annotations

import zoneinfo
from datetime import date, datetime
from decimal import Decimal
from functools import cache

from babel import Locale, dates, numbers
from django.conf import settings
from django.utils import timezone, translation

# The locale of each language of the interface (a region gives the currency formats).
LOCALES = {"en": "en_GB", "fr": "fr_FR"}


def language_choices():
    return settings.LANGUAGES


@cache
def _zone_names() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones()))


def time_zone_choices():
    return [(name, name) for name in _zone_names()]


def supported(language: str | None) -> str | None:
    """``language`` if the interface speaks it, else None."""
    codes = {code for code, _ in settings.LANGUAGES}
    return language if language in codes else None


def valid_zone(name: str | None) -> str | None:
    return name if name and name in _zone_names() else None


def locale() -> Locale:
    language = translation.get_language() or settings.LANGUAGE_CODE
    return Locale.parse(LOCALES.get(language.split("-")[0], "en_GB"))


def format_money(amount, currency: str = "EUR") -> str:
    if amount is None or amount == "":
        return ""
    return numbers.format_currency(Decimal(amount), currency or "EUR", locale=locale())


def format_number(value, digits: int = 3) -> str:
    """A quantity: up to ``digits`` decimals, no trailing zeros ("1,5", "2 000")."""
    if value is None or value == "":
        return ""
    pattern = "#,##0." + "#" * digits if digits else "#,##0"
    return numbers.format_decimal(Decimal(value), format=pattern, locale=locale())


def format_percent(value) -> str:
    """A rate given in percent (20, 5.5): "20 %" in French, "20%" in English."""
    if value is None or value == "":
        return ""
    # The locale's own pattern (French puts a no-break space before %), with the rate's
    # own decimals: 5.50 -> "5,5 %", 20 -> "20 %".
    return numbers.format_percent(
        Decimal(value).normalize() / 100, locale=locale(), decimal_quantization=False
    )


def format_date(value, format: str = "medium") -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, datetime):
        value = timezone.localtime(value) if timezone.is_aware(value) else value
        value = value.date()
    return dates.format_date(value, format=format, locale=locale())


def format_datetime(value: datetime | None, format: str = "medium") -> str:
    """In the active time zone, with its name ("6 déc. 2026, 19:05:00 CET")."""
    if value is None or value == "":
        return ""
    if timezone.is_aware(value):
        value = timezone.localtime(value)
    short = dates.format_datetime(
        value, format="short" if format == "short" else format, locale=locale()
    )
    return f"{short} {value.tzname() or ''}".strip()


def today() -> date:
    return timezone.localdate()
