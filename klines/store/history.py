"""Reads for the history backfill: the stored klines of a range and at given open times.

How many a range holds and the oldest are :mod:`klines.store.reads`' (re-exported here).

Each is one pipeline on the ``kline_latest`` index (symbol, interval, open time),
as the other reads (:mod:`klines.store.reads`).
"""

from __future__ import annotations

from datetime import datetime

from klines.store import pipelines
from klines.store.reads import _records, count_between, oldest_open_time
from klines.store.records import KlineRecord

__all__ = ["count_between", "oldest_open_time", "stored_at", "stored_between"]


def stored_between(symbol: str, interval: str, since: datetime, until: datetime, limit: int) -> list[KlineRecord]:
    """The stored klines with ``since <= open time <= until`` (at most ``limit``), oldest first."""
    return _records(pipelines.klines_between(symbol.upper(), interval, since, until, limit, newest_first=False))


def stored_at(symbol: str, interval: str, open_times: list[datetime]) -> list[KlineRecord]:
    """The stored klines of one symbol at these open times, in no particular order."""
    return _records(pipelines.klines_at(symbol.upper(), interval, open_times))
