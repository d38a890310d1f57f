"""Search, sort and paginate a list page, from the query string (?q=, ?sort=, ?page=)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce
from operator import or_

from django.core.paginator import Page, Paginator
from django.db.models import Q

PAGE_SIZE = 50
PICK_LIMIT = 20  # a picker shows this many matches at most, whatever the table's size


@dataclass
class Listing:
    page: Page
    query: str
    sort: str
    sorts: dict[str, str]  # key -> label
    rows: object = None  # every matching row, in order (for an export)

    def sort_link(self, key: str) -> str:
        """The ?sort= value that sorts by ``key``, flipping the direction if current."""
        return f"-{key}" if self.sort == key else key


def search_text(value: str) -> str:
    """What the user typed, as a search: NUL cannot reach PostgreSQL in a query and is
    never part of a real search; 100 characters are enough for any name."""
    return value.replace("\x00", "").strip()[:100]


def matching(queryset, query: str, search: list[str]):
    if not query:
        return queryset
    return queryset.filter(reduce(or_, (Q(**{f"{f}__icontains": query}) for f in search)))


def pick(queryset, query: str, search: list[str], limit: int = PICK_LIMIT) -> tuple[list, bool]:
    """The first ``limit`` rows matching ``query`` (in the queryset's order), and whether
    more match: what a picker offers, bounded however many rows there are."""
    rows = list(matching(queryset, search_text(query), search)[: limit + 1])
    return rows[:limit], len(rows) > limit


def listing(
    request, queryset, *, search: list[str], sorts: dict[str, tuple[str, str]], default: str
) -> Listing:
    """``sorts`` maps a key of the URL to (ORM ordering field, label): nothing the user
    types reaches order_by() unless it is one of these keys."""
    query = search_text(request.GET.get("q", ""))
    queryset = matching(queryset, query, search)
    sort = request.GET.get("sort", default)
    key = sort.lstrip("-")
    if key not in sorts:
        sort, key = default, default.lstrip("-")
    field = sorts[key][0]
    queryset = queryset.order_by(f"-{field}" if sort.startswith("-") else field, "-pk")
    page = Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))
    return Listing(page, query, sort, {k: label for k, (_, label) in sorts.items()}, queryset)


def wants_csv(request) -> bool:
    return request.GET.get("format") == "csv"


def export(listing: Listing, filename: str, columns):
    """The list as CSV: every row the list shows across its pages (its search, filter and
    sort), read through the same access-controlled queryset (S6). ``columns``:
    (header, row -> value) pairs."""
    from oxygis.core.csvexport import csv_download

    header = [str(title) for title, _value in columns]
    rows = ([value(row) for _title, value in columns] for row in listing.rows.iterator(2000))
    return csv_download(filename, header, rows)
