"""The store's reads as MongoDB aggregation pipelines that an index can answer.

django-mongodb-backend compiles ``filter(symbol=..., interval=...)`` to a
``$match`` on ``{"$and": [...]}`` and puts ``$project``/``$addFields`` before
the ``$sort``. MongoDB's optimizer flattens and reorders that and uses the
index; SecantusDB, the embedded server, does not, and scans the whole
collection (measured: 70-300 ms at only 5,000 klines, growing with every
kline stored). These pipelines are written the way both servers plan well: one
flat ``$match`` on indexed fields, then ``$sort``, ``$limit`` and only then
``$project``. Each is checked against SecantusDB's ``explain`` in the tests.

SecantusDB also reads every index match before it sorts and limits, so "the
newest N" costs as much as the symbol's whole history. :func:`lookback` gives
widening windows to ask in turn: a live symbol is answered by the first, small
one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

Pipeline = list[dict[str, Any]]
WIDEN = 64  # each lookback window is this many times the one before


def widening(
    anchor: datetime, first: timedelta, *, forward: bool = False, windows: int = 4
) -> Iterator[datetime | None]:
    """Far ends of widening windows from ``anchor`` (backwards, or ``forward``), the first ``first`` long;
    the last is ``None`` (everything)."""
    span = first
    for _ in range(windows):
        try:
            bound = anchor + span if forward else anchor - span
        except OverflowError:  # wider than the calendar: the next window is everything
            break
        yield bound
        span *= WIDEN
    yield None


def lookback(now: datetime, first: timedelta, *, windows: int = 4) -> Iterator[datetime | None]:
    """Starts of widening windows that end at ``now``, the first ``first`` long; the last is ``None`` (everything)."""
    return widening(now, first, windows=windows)


def newest_first(
    symbol: str, interval: str, count: int, *, since: datetime | None = None, before: datetime | None = None
) -> Pipeline:
    """The newest ``count`` klines of one symbol and interval (``since <= open time < before``), newest first."""
    match: dict[str, Any] = {"symbol": symbol, "interval": interval}
    bounds = {op: moment for op, moment in (("$gte", since), ("$lt", before)) if moment is not None}
    if bounds:
        match["open_time"] = bounds
    return [{"$match": match}, {"$sort": {"open_time": -1}}, {"$limit": count}]


def klines_between(
    symbol: str, interval: str, since: datetime | None, until: datetime, limit: int, *, newest_first: bool
) -> Pipeline:
    """At most ``limit`` klines with ``since <= open time <= until`` (``since`` ``None``: no lower bound),
    oldest or newest first (index ``kline_latest``)."""
    window: dict[str, Any] = {"$lte": until}
    if since is not None:
        window["$gte"] = since
    return [
        {"$match": {"symbol": symbol, "interval": interval, "open_time": window}},
        {"$sort": {"open_time": -1 if newest_first else 1}},
        {"$limit": limit},
    ]


def open_times_between(symbol: str, interval: str, since: datetime, until: datetime) -> Pipeline:
    """Open and stored times with ``since <= open time < until``, oldest first (index ``kline_latest``)."""
    return [
        {"$match": {"symbol": symbol, "interval": interval, "open_time": {"$gte": since, "$lt": until}}},
        {"$sort": {"open_time": 1}},
        {"$project": {"open_time": 1, "stored_at": 1}},
    ]


def oldest_open(symbol: str, interval: str, *, before: datetime | None = None) -> Pipeline:
    """The open time of the oldest kline of one symbol and interval (opened before ``before``; index
    ``kline_latest``). SecantusDB reads every match: without ``before`` that is the symbol's whole record."""
    match: dict[str, Any] = {"symbol": symbol, "interval": interval}
    if before is not None:
        match["open_time"] = {"$lt": before}
    return [
        {"$match": match},
        {"$sort": {"open_time": 1}},
        {"$limit": 1},
        {"$project": {"open_time": 1}},
    ]


def count_between(symbol: str, interval: str, since: datetime, until: datetime) -> Pipeline:
    """How many klines open with ``since <= open time < until`` (index ``kline_latest``; on SecantusDB a sixth of
    the time of reading their open times)."""
    return [
        {"$match": {"symbol": symbol, "interval": interval, "open_time": {"$gte": since, "$lt": until}}},
        {"$count": "n"},
    ]


def exchange_gaps(symbol: str, interval: str) -> Pipeline:
    """The ranges the exchange has no klines for, oldest first (index ``exchange_gap_range``)."""
    return [
        {"$match": {"symbol": symbol, "interval": interval}},
        {"$sort": {"first_open": 1}},
        {"$project": {"first_open": 1, "last_open": 1}},
    ]


def stored_since(moment: datetime, limit: int) -> Pipeline:
    """Klines stored at or after ``moment``, oldest stored first (the ``stored_at`` index)."""
    return [
        {"$match": {"stored_at": {"$gte": moment}}},
        {"$sort": {"stored_at": 1}},
        {"$limit": limit},
    ]


def newest_stored(since: datetime | None) -> Pipeline:
    """The ``stored_at`` of the most recently stored kline, if stored at or after ``since``."""
    return [
        {"$match": {"stored_at": {"$gte": since or datetime.min}}},
        {"$sort": {"stored_at": -1}},
        {"$limit": 1},
        {"$project": {"stored_at": 1}},
    ]


def klines_at(symbol: str, interval: str, open_times: Iterable[datetime]) -> Pipeline:
    """The stored klines of one symbol at these open times (index ``kline_latest``)."""
    return [{"$match": {"symbol": symbol, "interval": interval, "open_time": {"$in": sorted(set(open_times))}}}]


def stored_open_times(symbol: str, interval: str, open_times: Iterable[datetime]) -> Pipeline:
    """Which of these open times of one symbol are stored (index ``kline_latest``)."""
    return [
        {"$match": {"symbol": symbol, "interval": interval, "open_time": {"$in": sorted(set(open_times))}}},
        {"$project": {"open_time": 1}},
    ]


def blocks_between(symbol: str, interval: str, after: datetime, until: datetime) -> Pipeline:
    """Encoded blocks that start with ``after < first open time <= until``, oldest first (index
    ``kline_block_range``)."""
    return [
        {"$match": {"symbol": symbol, "interval": interval, "block_start": {"$gt": after, "$lte": until}}},
        {"$sort": {"block_start": 1}},
    ]


def block_starts(symbol: str, interval: str) -> Pipeline:
    """The first open time of every encoded block of one symbol and interval (index ``kline_block_range``)."""
    return [
        {"$match": {"symbol": symbol, "interval": interval}},
        {"$sort": {"block_start": 1}},
        {"$project": {"block_start": 1}},
    ]
