"""The only code that reads or writes mark-price klines and funding rates.

Writes are one unordered ``insert_many`` each: a row whose key (the unique index) is
already stored is refused by the server and skipped, so each is stored exactly once
whoever writes it, and nothing is read first. Reads hit the (symbol[, interval], time) index.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.db import connections, models, router
from pymongo.errors import BulkWriteError

from klines.binance.derivatives import Funding, MarkKline
from klines.models import FundingRate, MarkPriceKline

DUPLICATE_KEY = 11000


def _insert_new(model: type[models.Model], rows: Sequence[MarkKline | Funding]) -> int:
    """Insert ``rows`` as ``model`` documents, skipping keys already stored; return how many were new."""
    if not rows:
        return 0
    connection = connections[router.db_for_write(model)]
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    documents = []
    for row in rows:
        instance = model(**row.as_fields())
        documents.append({f.column: f.get_db_prep_save(f.pre_save(instance, True), connection) for f in fields})
    try:
        connection.get_collection(model._meta.db_table).insert_many(
            documents, ordered=False, session=connection.session
        )
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors") or []
        if not errors or any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise
        return len(rows) - len(errors)
    return len(rows)


def save_mark_klines(klines: Sequence[MarkKline]) -> int:
    return _insert_new(MarkPriceKline, klines)


def save_funding(rates: Sequence[Funding]) -> int:
    return _insert_new(FundingRate, rates)


def mark_span(symbol: str, interval: str) -> tuple[datetime, datetime] | None:
    """Open times of the oldest and the newest stored mark-price kline, ``None`` if there is none."""
    rows = MarkPriceKline.objects.filter(symbol=symbol, interval=interval)
    first, last = rows.order_by("open_time").first(), rows.order_by("-open_time").first()
    return None if first is None or last is None else (first.open_time, last.open_time)


def funding_span(symbol: str) -> tuple[datetime, datetime] | None:
    """Times of the oldest and the newest stored funding rate, ``None`` if there is none."""
    rows = FundingRate.objects.filter(symbol=symbol)
    first, last = rows.order_by("funding_time").first(), rows.order_by("-funding_time").first()
    return None if first is None or last is None else (first.funding_time, last.funding_time)


def _page(rows: models.QuerySet, field: str, start: datetime | None, end: datetime | None, limit: int) -> list:
    """Binance's paging: from ``start`` the oldest ``limit`` up to ``end``; else the newest up to ``end``."""
    if end is not None:
        rows = rows.filter(**{f"{field}__lte": end})
    if start is not None:
        return list(rows.filter(**{f"{field}__gte": start}).order_by(field)[:limit])
    return list(rows.order_by(f"-{field}")[:limit])[::-1]


def mark_page(
    symbol: str, interval: str, *, start: datetime | None, end: datetime | None, limit: int
) -> list[MarkPriceKline]:
    return _page(MarkPriceKline.objects.filter(symbol=symbol, interval=interval), "open_time", start, end, limit)


def funding_page(
    symbols: Sequence[str], *, start: datetime | None, end: datetime | None, limit: int
) -> list[FundingRate]:
    """Funding rates of ``symbols`` (one indexed read each), oldest first, at most ``limit``."""
    found: list[FundingRate] = []
    for symbol in symbols:
        found += _page(FundingRate.objects.filter(symbol=symbol), "funding_time", start, end, limit)
    found.sort(key=lambda r: (r.funding_time, r.symbol))
    return found[:limit] if start is not None else found[-limit:]
