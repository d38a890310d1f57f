"""The quotation's PDF (WeasyPrint), one per revision of an order (S9).

The PDF of a revision is made once, stored, and never made again: its SHA-256 is the
document digest the customer's acceptance names, and the file the seller downloads is the
very one the customer saw. It is written in the customer's language.

Threat: server-side request forgery through the document. Everything in it comes from
the tenant's data (names, descriptions, the footer), and WeasyPrint would fetch any URL a
stylesheet or an image names. The fetcher here allows ``data:`` URLs only (the logo is
one, read from the tenant's database); anything else is refused without a request."""

from __future__ import annotations

import base64
import hashlib

from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import translation

from oxygis.core.i18n import supported

from .models import Company, Order, QuotationDocument

RETRIES = 3  # a revision that keeps changing while its PDF is made


def no_fetch_url_fetcher():
    from weasyprint.urls import URLFetcher

    return URLFetcher(allowed_protocols=("data",), allow_redirects=False, timeout=1)


def html_to_pdf(html: str) -> bytes:
    from weasyprint import HTML

    return HTML(string=html, base_url=None, url_fetcher=no_fetch_url_fetcher()).write_pdf()


def document_language(order: Order, company: Company | None = None) -> str:
    company = company or Company.current()
    return (
        supported(order.customer.language)
        or supported(company.language)
        or translation.get_language()
        or "en"
    )


def render_quotation(order: Order, company: Company, language: str) -> bytes:
    lines = list(order.lines.all())
    logo = (
        "data:image/png;base64," + base64.b64encode(bytes(company.logo)).decode()
        if company.logo
        else ""
    )
    with translation.override(language):
        html = render_to_string(
            "sales/pdf/quotation.html",
            {
                "order": order,
                "company": company,
                "customer": order.customer,
                "lines": lines,
                "breakdown": order.tax_breakdown(lines),
                "logo": logo,
                "language": language,
            },
        )
    return html_to_pdf(html)


def current_document(order: Order) -> QuotationDocument:
    """The stored PDF of ``order``'s current revision, made now if it is not yet.

    Made outside any lock (it takes a fraction of a second), then stored only if the
    order is still at that revision; else made again from the new one."""
    for _attempt in range(RETRIES):
        order.refresh_from_db()
        existing = QuotationDocument.objects.filter(
            order_id=order.pk, revision=order.revision
        ).first()
        if existing is not None:
            return existing
        company = Company.current()
        language = document_language(order, company)
        revision = order.revision
        pdf = render_quotation(order, company, language)
        with transaction.atomic(using=QuotationDocument.objects.db):
            now = (
                Order.objects.select_for_update()
                .filter(pk=order.pk)
                .values_list("revision", flat=True)
                .first()
            )
            if now != revision:
                continue  # changed while we wrote it: this PDF shows an old revision
            try:
                with transaction.atomic(using=QuotationDocument.objects.db):
                    return QuotationDocument.objects.create(
                        order_id=order.pk,
                        revision=revision,
                        language=language,
                        sha256=hashlib.sha256(pdf).hexdigest(),
                        pdf=pdf,
                    )
            except IntegrityError:  # made by another request at the same moment
                pass
        found = QuotationDocument.objects.filter(order_id=order.pk, revision=revision).first()
        if found is not None:
            return found
    raise RuntimeError("the quotation kept changing while its document was made")


def filename(document: QuotationDocument, number: str) -> str:
    return f"{number}-r{document.revision}.pdf"
