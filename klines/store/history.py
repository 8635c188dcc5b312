"""Reads for the history backfill: how many klines a range holds, the stored klines of a range, the oldest.

Each is one pipeline on the ``kline_latest`` index (symbol, interval, open time),
as the other reads (:mod:`klines.store.reads`).
"""

from __future__ import annotations

from datetime import datetime

from klines.store import pipelines
from klines.store.reads import _documents, _records
from klines.store.records import KlineRecord, utc


def count_between(symbol: str, interval: str, since: datetime, until: datetime) -> int:
    """How many klines of one symbol are stored with ``since <= open time < until``."""
    pipeline = [
        {"$match": {"symbol": symbol.upper(), "interval": interval, "open_time": {"$gte": since, "$lt": until}}},
        {"$group": {"_id": None, "n": {"$sum": 1}}},
    ]
    rows = _documents(pipeline)
    return int(rows[0]["n"]) if rows else 0


def stored_between(symbol: str, interval: str, since: datetime, until: datetime, limit: int) -> list[KlineRecord]:
    """The stored klines with ``since <= open time <= until`` (at most ``limit``), oldest first."""
    return _records(pipelines.klines_between(symbol.upper(), interval, since, until, limit, newest_first=False))


def stored_at(symbol: str, interval: str, open_times: list[datetime]) -> list[KlineRecord]:
    """The stored klines of one symbol at these open times, in no particular order."""
    return _records(pipelines.klines_at(symbol.upper(), interval, open_times))


def oldest_open_time(symbol: str, interval: str) -> datetime | None:
    """Open time of the oldest stored kline of one symbol and interval, ``None`` if none is."""
    rows = _documents(
        [
            {"$match": {"symbol": symbol.upper(), "interval": interval}},
            {"$sort": {"open_time": 1}},
            {"$limit": 1},
            {"$project": {"open_time": 1}},
        ]
    )
    return utc(rows[0]["open_time"]) if rows else None
