"""CSV downloads, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterable

from django.http import FileResponse

# A cell starting with one of these is a formula to Excel and LibreOffice (CSV injection):
# such text is prefixed with a quote, which the spreadsheet shows as plain text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_download(filename: str, header: Iterable[str], rows: Iterable[Iterable]):
    """A CSV attachment (UTF-8 with a BOM, which Excel needs to read accents).

    Written out here, while the view still has its database (a streamed body would be
    read after the tenant's database is released), into a file that stays in memory
    while small and spills to disk when large."""
    spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115
    text = io.TextIOWrapper(spool, encoding="utf-8-sig", newline="")
    writer = csv.writer(text)
    writer.writerow(list(header))
    for row in rows:
        writer.writerow([cell(v) for v in row])
    text.flush()
    text.detach()
    spool.seek(0)
    return FileResponse(
        spool, as_attachment=True, filename=filename, content_type="text/csv; charset=utf-8"
    )
