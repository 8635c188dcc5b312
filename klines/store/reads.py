"""Reads: the newest klines, open times in a window, what was stored since a moment.

Every read is one of :mod:`klines.store.pipelines`, written so that an index answers it,
sent on Django's connection to the klines collection as is; the documents become
:class:`~klines.store.records.KlineRecord` tuples, not model instances (see :mod:`klines.store.records`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connections, router

from klines.binance.intervals import INTERVAL_SECONDS, interval_ms
from klines.models import Kline
from klines.store import pipelines
from klines.store.records import KlineRecord, record_from_document, utc
from klines.window import HISTORY

RECENTLY_STORED = timedelta(minutes=1)  # newest_stored_at's first window


def _documents(pipeline: pipelines.Pipeline) -> list[dict[str, Any]]:
    """The documents ``pipeline`` gives on the klines collection (the connection and session the model would use)."""
    connection = connections[router.db_for_read(Kline)]
    collection = connection.get_collection(Kline._meta.db_table)
    return collection.aggregate(pipeline, session=connection.session).to_list()  # by batch, not by document


def _records(pipeline: pipelines.Pipeline) -> list[KlineRecord]:
    return [record_from_document(document) for document in _documents(pipeline)]


def last_klines(
    symbol: str, interval: str, count: int = HISTORY, *, now: datetime | None = None, before: datetime | None = None
) -> list[KlineRecord]:
    """The newest ``count`` stored klines of one symbol (opened before ``before``, if given), oldest first.

    Asks for the last ``2 * count`` intervals first and widens the window only
    if that holds fewer than ``count`` (see :func:`pipelines.lookback`).
    """
    first = timedelta(seconds=2 * count * INTERVAL_SECONDS.get(interval, 60))
    rows: list[KlineRecord] = []
    for since in pipelines.lookback(before or now or datetime.now(UTC), first):
        pipeline = pipelines.newest_first(symbol.upper(), interval, count, since=since, before=before)
        rows = _records(pipeline)
        if len(rows) >= count:
            break
    return rows[::-1]


def klines_page(symbol: str, interval: str, *, start: datetime | None, end: datetime, limit: int) -> list[KlineRecord]:
    """One page of Binance's ``/fapi/v1/klines``, oldest first, from what is stored.

    With ``start``: the oldest ``limit`` klines opened in ``[start, end]``;
    without: the newest ``limit`` opened at or before ``end``. SecantusDB reads
    every index match before it limits, so the page is asked for in widening
    windows, the first just ``limit`` intervals wide (:func:`pipelines.widening`).
    """
    span = timedelta(milliseconds=limit * interval_ms(interval))
    rows: list[KlineRecord] = []
    for bound in pipelines.widening(start if start is not None else end, span, forward=start is not None):
        if start is not None:
            until = end if bound is None else min(end, bound)
            pipeline = pipelines.klines_between(symbol, interval, start, until, limit, newest_first=False)
        else:
            pipeline = pipelines.klines_between(symbol, interval, bound, end, limit, newest_first=True)
        rows = _records(pipeline)
        if len(rows) >= limit or (start is not None and until >= end):
            break
    return rows if start is not None else rows[::-1]


def klines_in_batches(
    symbol: str, interval: str, start: datetime, end: datetime, batch: int
) -> Iterator[list[KlineRecord]]:
    """The klines of one symbol opened in ``[start, end]``, oldest first, in lists of at most ``batch``.

    A cursor by open time over :func:`klines_page`: each list is one page from
    just after the last one's newest open time, so only a batch is ever in
    memory and every read is an indexed window (a hole widens it as a page does).
    The last list is shorter than ``batch`` (possibly empty).
    """
    cursor = start
    while True:
        rows = klines_page(symbol, interval, start=cursor, end=end, limit=batch)
        yield rows
        if len(rows) < batch:
            return
        cursor = rows[-1].open_time + timedelta(milliseconds=1)


def newest_open_time(symbol: str, interval: str, *, before: datetime | None = None) -> datetime | None:
    """Open time of the newest stored kline of one symbol (opened before ``before``), ``None`` if none is."""
    newest = last_klines(symbol, interval, 1, before=before)
    return newest[0].open_time if newest else None


def oldest_open_time(symbol: str, interval: str, *, before: datetime | None = None) -> datetime | None:
    """Open time of the oldest stored kline of one symbol (opened before ``before``), ``None`` if none is."""
    rows = _documents(pipelines.oldest_open(symbol.upper(), interval, before=before))
    return utc(rows[0]["open_time"]) if rows else None


def count_between(symbol: str, interval: str, since: datetime, until: datetime) -> int:
    """How many klines of one symbol are stored with ``since <= open time < until``."""
    rows = _documents(pipelines.count_between(symbol.upper(), interval, since, until))
    return rows[0]["n"] if rows else 0


def open_times_between(symbol: str, interval: str, since: datetime, until: datetime) -> list[datetime]:
    """Open times of one symbol's stored klines with ``since <= open time < until``, oldest first."""
    rows = _documents(pipelines.open_times_between(symbol.upper(), interval, since, until))
    return [utc(row["open_time"]) for row in rows]


def stored_times_between(
    symbol: str, interval: str, since: datetime, until: datetime
) -> list[tuple[datetime, datetime]]:
    """``(open time, stored at)`` of one symbol's klines with ``since <= open time < until``, oldest first."""
    rows = _documents(pipelines.open_times_between(symbol.upper(), interval, since, until))
    return [(utc(row["open_time"]), utc(row["stored_at"])) for row in rows]


def klines_stored_since(
    moment: datetime, interval: str | None, symbols: Iterable[str] | None, limit: int
) -> tuple[list[KlineRecord], int, datetime | None]:
    """Klines stored at or after ``moment`` (of ``interval`` and ``symbols``; ``None``: all), oldest stored first.

    Returns the matching rows, how many rows were read and the newest
    ``stored_at`` read (to resume from). The query uses only
    the ``stored_at`` index (some servers' planners skip an index when more
    filters are added); the few rows since the last look are filtered here.
    """
    wanted = None if symbols is None else {s.upper() for s in symbols}
    rows = _records(pipelines.stored_since(moment, limit))
    matching = [
        r for r in rows if (wanted is None or r.symbol in wanted) and (interval is None or r.interval == interval)
    ]
    return matching, len(rows), rows[-1].stored_at if rows else None


def newest_stored_at(now: datetime | None = None) -> datetime | None:
    """When the most recently stored kline (of any symbol) was stored (widening windows, as above)."""
    for since in pipelines.lookback(now or datetime.now(UTC), RECENTLY_STORED):
        newest = _documents(pipelines.newest_stored(since))
        if newest:
            return utc(newest[0]["stored_at"])
    return None
