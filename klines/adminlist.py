"""The admin's kline list on a large record: filters from the configuration, pages by cursor, no count.

Django's change list counts the filtered rows and the whole collection for its
paginator, lists the filters' values with a ``distinct`` over the collection,
finds the date drill-down's years with a ``$group`` over it, and sorts with the
ORM's pipelines, which SecantusDB answers by scanning: at a million klines one
page took over four minutes. This one reads only through
:mod:`klines.store.browse`: the symbol and interval choices are the recorded
ones from the settings, the drill-down is a calendar from September 2019 to
today, and a page is the newest ``list_per_page`` klines before a cursor
(``?before=``) or after one (``?after=``), read per (symbol, interval) from the
``kline_latest`` index. It counts nothing: SecantusDB's ``count``, even
``estimated_document_count``, reads every document.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.utils import formats
from django.utils.text import capfirst

from klines.binance.intervals import INTERVAL_SECONDS
from klines.store import browse
from klines.store.exchange import listed_symbols

OLDER, NEWER = "before", "after"  # the cursor parameters of the page links
DATE = "open_time"
FLOOR = datetime(2019, 9, 1, tzinfo=UTC)  # Binance's USD-M futures began in September 2019: the drill-down's start
MAX_STREAMS = 60  # more (symbol, interval) than this in one list: a filter must narrow it first


def recorded_symbols() -> list[str]:
    """The symbols the ingest records, upper case: configured, or the exchange's list at ``KLINE_SYMBOLS=all``."""
    config = settings.BINANCEWS
    return sorted({s.upper() for s in (listed_symbols() if config.all_symbols else config.symbols)})


class SymbolFilter(admin.SimpleListFilter):
    title = "symbol"
    parameter_name = "symbol"

    def lookups(self, request, model_admin) -> list[tuple[str, str]]:
        return [(symbol, symbol) for symbol in recorded_symbols()]

    def queryset(self, request, queryset):
        return queryset  # the list is read by KlineChangeList.get_results, not from this queryset


class IntervalFilter(SymbolFilter):
    title = "interval"
    parameter_name = "interval"

    def lookups(self, request, model_admin) -> list[tuple[str, str]]:
        return [(interval, interval) for interval in settings.BINANCEWS.intervals]


def date_window(year: str | None, month: str | None, day: str | None) -> browse.Window:
    """The open times of a drill-down selection (a year, a month of it, a day of that), ``ValueError`` if none."""
    if not year:
        return browse.Window()
    y, m, d = int(year), int(month or 1), int(day or 1)
    since = datetime(y, m, d, tzinfo=UTC)
    if day:
        until = datetime.fromordinal(since.toordinal() + 1).replace(tzinfo=UTC)
    elif month:
        until = datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=UTC)
    else:
        until = datetime(y + 1, 1, 1, tzinfo=UTC)
    return browse.Window(since, until)


def drilldown(
    params: dict[str, str], first: datetime | None, last: datetime | None, link: Callable[[dict[str, Any]], str]
) -> dict[str, Any]:
    """Django's date hierarchy (``admin/date_hierarchy.html``'s context) as a calendar from ``first`` to ``last``:
    every year, month or day between them is offered, whether klines are stored in it or not (Django's own
    asks the collection for the years, months and days that hold klines: a ``$group`` over all of them)."""
    year, month, day = (params.get(f"{DATE}__{part}") for part in ("year", "month", "day"))
    keys = {part: f"{DATE}__{part}" for part in ("year", "month", "day")}
    if first is None or last is None:
        return {"show": False}
    if year and month and day:
        chosen = date(int(year), int(month), int(day))
        back = {"link": link({keys["year"]: year, keys["month"]: month}), "title": _format(chosen, "YEAR_MONTH")}
        return {"show": True, "back": back, "choices": [{"title": _format(chosen, "MONTH_DAY")}]}
    if year and month:
        y, m = int(year), int(month)
        days = [date(y, m, d) for d in range(1, calendar.monthrange(y, m)[1] + 1)]
        choices = [
            {
                "link": link({keys["year"]: year, keys["month"]: month, keys["day"]: d.day}),
                "title": _format(d, "MONTH_DAY"),
            }
            for d in days
            if first.date() <= d <= last.date()
        ]
        return {"show": True, "back": {"link": link({keys["year"]: year}), "title": year}, "choices": choices}
    if year:
        y = int(year)
        months = [date(y, m, 1) for m in range(1, 13)]
        choices = [
            {"link": link({keys["year"]: year, keys["month"]: m.month}), "title": _format(m, "YEAR_MONTH")}
            for m in months
            if (first.year, first.month) <= (y, m.month) <= (last.year, last.month)
        ]
        return {"show": True, "back": {"link": link({}), "title": "All dates"}, "choices": choices}
    years = range(first.year, last.year + 1)
    return {
        "show": True,
        "back": None,
        "choices": [{"link": link({keys["year"]: str(y)}), "title": str(y)} for y in years],
    }


def _format(day: date, style: str) -> str:
    return capfirst(formats.date_format(day, f"{style}_FORMAT"))


class KlineChangeList(ChangeList):
    """The kline list, read by cursor from the index; see the module docstring."""

    def get_filters_params(self, params=None):
        lookup = super().get_filters_params(params)
        for name in (OLDER, NEWER):
            lookup.pop(name, None)
        return lookup

    def get_query_string(self, new_params=None, remove=None) -> str:
        """Links that change a filter start again from the newest page."""
        return super().get_query_string(new_params, [*(remove or []), OLDER, NEWER])

    def streams(self) -> list[tuple[str, str]]:
        """The (symbol, interval) pairs this list shows: the filters', or every recorded one (narrowed by a search)."""
        symbol, interval = self.params.get("symbol"), self.params.get("interval")
        symbols = [symbol.upper()] if symbol else recorded_symbols()
        if self.query:
            term = self.query.strip().upper()
            symbols = [s for s in symbols if term in s] or ([term] if term.isalnum() and not symbol else [])
        intervals = [interval] if interval else list(settings.BINANCEWS.intervals)
        unknown = [name for name in intervals if name not in INTERVAL_SECONDS]
        if unknown:
            raise ValueError(f"not an interval: {unknown[0]!r}")
        return [(s, i) for s in symbols for i in intervals]

    def get_results(self, request) -> None:
        count, now = self.list_per_page, datetime.now(UTC)
        try:
            streams = self.streams()
            window = date_window(*(self.params.get(f"{DATE}__{part}") for part in ("year", "month", "day")))
            older_than = browse.Cursor.parse(request.GET[OLDER]) if OLDER in request.GET else None
            newer_than = browse.Cursor.parse(request.GET[NEWER]) if NEWER in request.GET else None
        except ValueError as exc:
            raise IncorrectLookupParameters(str(exc)) from exc
        self.too_broad = len(streams) > MAX_STREAMS
        rows: list = []
        has_newer = has_older = False
        if newer_than is not None and not self.too_broad:
            rows = browse.page_after(streams, count + 1, cursor=newer_than, window=window)
            has_newer, has_older, rows = len(rows) > count, True, rows[-count:]
        elif not self.too_broad:
            rows = browse.page_before(streams, count + 1, cursor=older_than, window=window, now=now)
            has_newer, has_older, rows = older_than is not None, len(rows) > count, rows[:count]
        self.result_list = rows
        self.result_count = len(rows)
        self.full_result_count = None
        self.show_full_result_count = False
        self.show_admin_actions = False
        self.can_show_all = False
        self.multi_page = has_newer or has_older
        self.paginator = None
        self.newer_link = has_newer and rows and self.get_query_string({NEWER: browse.Cursor.of(rows[0]).token()})
        self.older_link = has_older and rows and self.get_query_string({OLDER: browse.Cursor.of(rows[-1]).token()})
        self.drilldown = drilldown(self.params, FLOOR, now, lambda p: self.get_query_string(p, [f"{DATE}__"]))
