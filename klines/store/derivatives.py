"""The only code that reads or writes mark-price klines and funding rates.

Writes are one unordered ``insert_many`` each: a row whose key (the unique index) is
already stored is refused by the server and skipped, so each is stored exactly once
whoever writes it, and nothing is read first. Reads hit the (symbol[, interval], time) index.
A funding rate recorded from the mark-price stream is stored ``from_stream`` until REST
confirms it (:func:`reconcile_funding`: REST wins).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connections, models, router
from pymongo.errors import BulkWriteError

from klines.binance.derivatives import Funding, MarkKline
from klines.models import FundingRate, MarkPriceKline
from klines.store.records import utc

DUPLICATE_KEY = 11000


def _insert_new(model: type[models.Model], rows: Sequence[MarkKline | Funding], **extra: Any) -> int:
    """Insert ``rows`` (with the ``extra`` field values) as ``model`` documents, skipping keys already stored;
    return how many were new."""
    if not rows:
        return 0
    connection = connections[router.db_for_write(model)]
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    documents = []
    for row in rows:
        instance = model(**row.as_fields(), **extra)
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


def save_streamed_funding(rates: Sequence[Funding]) -> int:
    """Store funding rates read from the stream, to be confirmed by REST; one REST already stored stays."""
    return _insert_new(FundingRate, rates, from_stream=True)


def unconfirmed_funding(symbol: str) -> list[FundingRate]:
    """The funding rates of ``symbol`` recorded from the stream and not yet confirmed by REST, oldest first."""
    return list(FundingRate.objects.filter(symbol=symbol, from_stream=True).order_by("funding_time"))


@dataclass
class Reconciled:
    new: int = 0  # funding rates REST had that were not stored
    confirmed: int = 0  # from the stream, as REST has them
    corrected: list[tuple[FundingRate, Funding]] = field(default_factory=list)  # (as the stream had it, REST's)
    removed: list[FundingRate] = field(default_factory=list)  # from the stream, REST has no such funding


def _same(stored: FundingRate, rest: Funding) -> bool:
    """Digit for digit, as stored (``0.0001`` and ``0.00010000`` differ: the record keeps what REST wrote)."""
    return (str(stored.funding_rate), str(stored.mark_price)) == (str(rest.funding_rate), str(rest.mark_price))


def reconcile_funding(
    fetched: Sequence[Funding], unconfirmed: Sequence[FundingRate], *, settled_before: datetime
) -> Reconciled:
    """Store REST's ``fetched`` funding rates over the stream's ``unconfirmed`` ones: REST wins. ``fetched`` is all
    REST has from the oldest unconfirmed on; an unconfirmed rate it lacks, settled before ``settled_before``
    (REST has had time to publish it), is removed."""
    result = Reconciled()
    by_time = {f.funding_time: f for f in fetched}
    for stored in unconfirmed:
        rest = by_time.pop(stored.funding_time, None)
        if rest is None:
            if stored.funding_time < settled_before:
                FundingRate.objects.filter(pk=stored.pk).delete()
                result.removed.append(stored)
            continue
        if _same(stored, rest):
            result.confirmed += 1
        else:
            result.corrected.append((stored, rest))
        FundingRate.objects.filter(pk=stored.pk).update(
            funding_rate=rest.funding_rate, mark_price=rest.mark_price, from_stream=False
        )
    result.new = save_funding(list(by_time.values()))
    return result


def funding_times(symbol: str) -> list[datetime]:
    """Every stored funding time of ``symbol``, oldest first (a few a day: the whole list is small)."""
    return _times(FundingRate, {"symbol": symbol}, "funding_time")


def _mark_range(symbol: str, interval: str, since: datetime, until: datetime) -> dict[str, Any]:
    return {"symbol": symbol, "interval": interval, "open_time": {"$gte": since, "$lte": until}}


def mark_count_between(symbol: str, interval: str, since: datetime, until: datetime) -> int:
    """Stored mark-price klines opened in ``[since, until]``."""
    rows = _aggregate(MarkPriceKline, [{"$match": _mark_range(symbol, interval, since, until)}, {"$count": "n"}])
    return rows[0]["n"] if rows else 0


def mark_open_times(symbol: str, interval: str, since: datetime, until: datetime) -> list[datetime]:
    """Open times of the stored mark-price klines opened in ``[since, until]``, oldest first."""
    return _times(MarkPriceKline, _mark_range(symbol, interval, since, until), "open_time")


def _aggregate(model: type[models.Model], pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``pipeline``'s documents on ``model``'s collection (the connection and session the model would use).
    Times come back as BSON's naive UTC."""
    connection = connections[router.db_for_read(model)]
    collection = connection.get_collection(model._meta.db_table)
    return collection.aggregate(pipeline, session=connection.session).to_list()


def _times(
    model: type[models.Model], match: dict[str, Any], field: str, *, limit: int = 0, newest: bool = False
) -> list[datetime]:
    """The ``field`` times of the documents matching ``match``, by time (index order), at most ``limit`` (0: all).
    Only the times are read: on SecantusDB two to three times faster than whole documents through the ORM."""
    pipeline: list[dict[str, Any]] = [{"$match": match}, {"$sort": {field: -1 if newest else 1}}]
    pipeline += [{"$limit": limit}] if limit else []
    return [utc(row[field]) for row in _aggregate(model, [*pipeline, {"$project": {field: 1}}])]


Span = tuple[datetime, datetime]


def _span(model: type[models.Model], match: dict[str, Any], field: str, known: Span | None) -> Span | None:
    """Oldest and newest ``field`` of the matching documents. With ``known``, an earlier answer, only what lies
    outside it is read: SecantusDB reads every match before it sorts, so the whole record costs seconds once a
    symbol holds a year of 1m, what was added since the last answer next to nothing."""
    if known is not None:
        older = _times(model, {**match, field: {"$lt": known[0]}}, field, limit=1)
        newer = _times(model, {**match, field: {"$gt": known[1]}}, field, limit=1, newest=True)
        return (older[0] if older else known[0], newer[0] if newer else known[1])
    first = _times(model, match, field, limit=1)
    return (first[0], _times(model, match, field, limit=1, newest=True)[0]) if first else None


def mark_span(symbol: str, interval: str, *, known: Span | None = None) -> Span | None:
    """Open times of the oldest and the newest stored mark-price kline, ``None`` if there is none; ``known``: an
    earlier answer for the same record (nothing deleted since), to read only its ends."""
    return _span(MarkPriceKline, {"symbol": symbol, "interval": interval}, "open_time", known)


def funding_span(symbol: str) -> Span | None:
    """Times of the oldest and the newest stored funding rate, ``None`` if there is none."""
    return _span(FundingRate, {"symbol": symbol}, "funding_time", None)


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
