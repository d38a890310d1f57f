"""French and English: who decides the language and the time zone, the formats of
amounts and dates, and the guards that keep every user-facing string translated."""

import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from django.conf import settings
from django.utils import timezone, translation

from oxygis.access.actors import acting_as, system
from oxygis.core import i18n
from oxygis.sales import services
from oxygis.sales.models import Company, Contact, Order
from oxygis.tenancy.databases import tenant_context
from tests.fixtures import mails_to
from tests.sales.test_views import client_for
from tests.web import i18n_scan

CATALOG = Path(settings.LOCALE_PATHS[0]) / "fr" / "LC_MESSAGES" / "django.po"


def spaces(text: str) -> str:
    """CLDR's narrow and plain no-break spaces as spaces, to compare."""
    return text.replace("\u202f", " ").replace("\u00a0", " ")


def set_company(world, **fields):
    with tenant_context(world.tenant), system(reason="test: company defaults"):
        Company.objects.update_or_create(pk=1, defaults=fields)


def set_user(world, name, **fields):
    with tenant_context(world.tenant), system(reason="test: preferences"):
        type(world.user(name)).objects.filter(username=name).update(**fields)


@pytest.fixture
def defaults(world):
    yield
    with tenant_context(world.tenant):
        Company.objects.filter(pk=1).delete()
        type(world.user("sam")).objects.update(language="", time_zone="")


# --- formats ------------------------------------------------------------------------------
def test_amounts_quantities_and_dates_in_each_locale():
    """Babel's CLDR formats: "2 021,81 €" in French, "€2,021.81" in English."""
    when = datetime(2026, 12, 6, 18, 5, tzinfo=UTC)
    with translation.override("fr"), timezone.override("Europe/Paris"):
        assert spaces(i18n.format_money(Decimal("2021.81"), "EUR")) == "2 021,81 €"
        assert spaces(i18n.format_number(Decimal("1500.250"))) == "1 500,25"
        assert spaces(i18n.format_percent(Decimal("5.50"))) == "5,5 %"
        assert i18n.format_date(when) == "6 déc. 2026"
        assert spaces(i18n.format_datetime(when)) == "6 déc. 2026, 19:05:00 CET"
    with translation.override("en"), timezone.override("America/New_York"):
        assert i18n.format_money(Decimal("2021.81"), "EUR") == "€2,021.81"
        assert i18n.format_money(Decimal("2021.81"), "USD") == "US$2,021.81"
        assert i18n.format_number(Decimal("1500.250")) == "1,500.25"
        assert i18n.format_percent(Decimal("20")) == "20%"
        assert spaces(i18n.format_datetime(when)) == "6 Dec 2026, 13:05:00 EST"


# --- who decides ----------------------------------------------------------------------------
def test_the_language_is_the_users_then_the_companys_then_the_browsers(alpha, world, defaults):
    """A person's own choice wins; else the company's default; else Accept-Language;
    <html lang> and Content-Language say which."""
    sam = client_for(alpha, "sam")

    def language_of(**headers):
        page = sam.get("/sales/orders/", headers=headers)
        lang = re.search(r'<html lang="([a-z]+)">', page.content.decode())[1]
        assert page["Content-Language"] == lang
        return lang, page.content.decode()

    assert language_of()[0] == "en"
    lang, html = language_of(**{"Accept-Language": "fr-FR,fr;q=0.9"})
    assert lang == "fr" and "Devis et commandes" in html
    set_company(world, language="fr")
    assert language_of(**{"Accept-Language": "en"})[0] == "fr"
    set_user(world, "sam", language="en")
    lang, html = language_of(**{"Accept-Language": "fr"})
    assert lang == "en" and "Quotations and orders" in html


def test_a_person_chooses_their_language_and_time_zone(alpha, world, defaults):
    sam = client_for(alpha, "sam")
    assert sam.get("/accounts/preferences/").status_code == 200
    saved = sam.post("/accounts/preferences/", {"language": "fr", "time_zone": "Asia/Tokyo"})
    assert saved.status_code == 302
    page = sam.get("/accounts/preferences/").content.decode()
    assert "Vos préférences sont enregistrées." in page
    refused = sam.post("/accounts/preferences/", {"language": "de", "time_zone": "Mars/Base"})
    assert refused.status_code == 200 and "errorlist" in refused.content.decode()


def test_times_are_shown_in_the_readers_time_zone(alpha, world, defaults):
    """Stored in UTC, shown in the user's zone, else the company's (Europe/Paris by
    default), with the zone's name."""
    with tenant_context(world.tenant), system(reason="test: a known time"):
        Order.objects.filter(pk=world.orders["sam"][0]).update(
            created_at=datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
        )
    sam = client_for(alpha, "sam")
    url = f"/sales/orders/{world.orders['sam'][0]}/"
    assert "1 Jul 2026, 12:00:00 CEST" in spaces(sam.get(url).content.decode())
    set_user(world, "sam", time_zone="America/Montreal")
    assert "1 Jul 2026, 06:00:00 EDT" in spaces(sam.get(url).content.decode())


def test_the_customer_reads_their_quotation_in_their_own_language(alpha, world, defaults):
    """The e-mail, the customer's page and the PDF follow the contact's language, whatever
    the seller's; the seller's own page stays in the seller's."""
    set_user(world, "sam", language="en")
    with tenant_context(world.tenant), acting_as(world.user("maria")):
        stamp = timezone.now().strftime("%H%M%S%f")
        customer = Contact.objects.create(
            name="Client Français", email=f"fr{stamp}@x.example", language="fr"
        )
    with tenant_context(world.tenant), acting_as(world.user("sam")):
        order = services.create_order(
            customer=customer,
            lines=[services.LineInput("Bureau", Decimal(1), Decimal("2021.81"), Decimal(20))],
        )
    sam = client_for(alpha, "sam")
    sent = sam.post(f"/sales/orders/{order.pk}/email/", follow=True).content.decode()
    assert "sent to" in sent  # the seller's message, in English
    mail = mails_to(customer.email)[-1]
    assert str(mail["Subject"]).startswith(f"Devis {order.number} de ")
    body = spaces(mail.get_body(preferencelist=("plain",)).get_content())
    assert "Bonjour," in body and "2 426,17 € TTC" in body
    link = re.search(r"https://\S+/portal/order/\S+", body)[0]
    page = alpha.client().get(link.split(alpha.host, 1)[1], headers={"Accept-Language": "en"})
    html = spaces(page.content.decode())
    assert '<html lang="fr">' in html and "Accepter ce devis" in html and "2 426,17 €" in html


# --- guards ---------------------------------------------------------------------------------
def test_the_template_guard_finds_unmarked_text():
    """The guard itself, on good and bad examples."""
    bad = [
        "<p>Save your work</p>",
        '<input placeholder="Search">',
        "{% if x %}<b>Delete</b>{% endif %}",
        "<td>{{ n }} items</td>",
    ]
    good = [
        '{% load i18n %}<p>{% translate "Save your work" %}</p>',
        "<input placeholder=\"{% translate 'Search' %}\">",
        "{% blocktranslate %}<b>Delete</b> {{ n }} items{% endblocktranslate %}",
        '<a href="{{ url }}" class="button">{{ label }}</a> · SHA-256 <code>{{ d }}</code>',
        "<style>body { font-family: sans-serif; }</style>",
    ]
    assert all(i18n_scan.template_findings(text) for text in bad)
    assert not any(i18n_scan.template_findings(text) for text in good)


def test_every_template_string_is_marked_for_translation():
    """Every word a tenant's person or customer reads in a template is translated
    (the staff console and staff e-mails are reviewed exceptions, in English)."""
    findings = [
        f"{path}:{line}: {text!r}"
        for path, source in i18n_scan.templates()
        for line, text in i18n_scan.template_findings(source)
    ]
    assert not findings, "\n".join(findings)


def test_the_python_guard_finds_unmarked_messages():
    bad = [
        'messages.success(request, "Saved.")',
        'raise ValidationError("Too big")',
        'name = forms.CharField(label="Your name")',
        'raise ActionRefused(f"You cannot {what}")',
    ]
    good = [
        'messages.success(request, _("Saved."))',
        'raise ValidationError(_("Too big"))',
        'name = forms.CharField(label=_("Your name"))',
        'log.warning("code exchange refused: %s", exc)',
        "messages.error(request, str(exc))",
    ]
    assert all(i18n_scan.python_findings(text) for text in bad)
    assert not any(i18n_scan.python_findings(text) for text in good)
    assert i18n_scan.gettext_shadowed("def f():\n    a, _ = g()\n    return _('x')\n")
    assert not i18n_scan.gettext_shadowed("def f():\n    return [a for a, _ in g()], _('x')\n")


def test_every_python_message_for_users_is_marked_and_gettext_never_shadowed():
    findings = []
    for path, source in i18n_scan.python_modules():
        findings += [f"{path}:{line}: {text!r}" for line, text in i18n_scan.python_findings(source)]
    for path, source in i18n_scan.python_modules():
        findings += [
            f"{path}:{line}: {name}() assigns _ and calls _()"
            for line, name in i18n_scan.gettext_shadowed(source)
        ]
    assert not findings, "\n".join(findings)


def test_the_french_catalog_is_complete_and_has_no_fuzzy_entry(tmp_path):
    """Every string the code marks (extracted now by makemessages from a copy of the
    sources) has a French translation in the shipped catalog, none fuzzy, and every
    placeholder survives (msgfmt --check)."""
    if not shutil.which("xgettext") or not shutil.which("msgfmt"):
        pytest.fail("GNU gettext is missing (scripts/ensure-gettext installs it)")
    with CATALOG.open("rb") as handle:
        shipped = read_po(handle, locale="fr")
    untranslated = [m.id for m in shipped if m.id and not all(_strings(m))]
    fuzzy = [m.id for m in shipped if m.id and m.fuzzy]
    assert not untranslated and not fuzzy, (untranslated, fuzzy)
    source = tmp_path / "oxygis"
    shutil.copytree(CATALOG.parents[3], source, ignore=shutil.ignore_patterns("*.mo"))
    (source / "locale").mkdir(exist_ok=True)
    environment = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "django",
            "makemessages",
            "--locale=fr",
            "--no-location",
            "--ignore=migrations/*",
            "--ignore=*/console/*",
        ],
        cwd=source,
        check=True,
        capture_output=True,
        env=environment,
    )
    with (source / "locale/fr/LC_MESSAGES/django.po").open("rb") as handle:
        extracted = read_po(handle, locale="fr")
    missing = sorted(str(m.id) for m in extracted if m.id and m.id not in shipped)
    assert not missing, "not in the French catalog:\n" + "\n".join(missing)
    check = subprocess.run(
        ["msgfmt", "--check", "-o", "/dev/null", str(CATALOG)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr


def _strings(message):
    return message.string if isinstance(message.string, tuple) else (message.string,)
