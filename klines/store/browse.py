"""Pages of stored klines for the admin's list, as model instances, every read answered from an index.

A page is keyed by a :class:`Cursor` (open time, symbol, interval), never by an
offset: a count or a ``$skip`` over a large record costs as much as the record.
Each (symbol, interval) is read with the store's pipelines
(:mod:`klines.store.pipelines`: a flat ``$match`` on symbol, interval and an
open-time window, then ``$sort`` and ``$limit``, index ``kline_latest``) in
widening windows, since SecantusDB reads every index match before it limits.
A list of several (symbol, interval) merges the newest page of each.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from klines.binance.intervals import INTERVAL_SECONDS, interval_ms
from klines.models import Kline
from klines.store import pipelines

MS = timedelta(milliseconds=1)
FIRST_WINDOW = 100  # a first window holds at least twice this many intervals


@dataclass(frozen=True, order=True)
class Cursor:
    """Where a page starts or ends: a kline's place in the list's order (open time, then symbol, interval)."""

    open_time: datetime
    symbol: str
    interval: str

    @classmethod
    def of(cls, kline: Kline) -> Cursor:
        return cls(kline.open_time, kline.symbol, kline.interval)

    def token(self) -> str:
        """``1764064920000.BTCUSDT.1m``: the cursor as a query-string value."""
        return f"{round(self.open_time.timestamp() * 1000)}.{self.symbol}.{self.interval}"

    @classmethod
    def parse(cls, token: str) -> Cursor:
        """The cursor :meth:`token` wrote; ``ValueError`` for anything else."""
        millis, symbol, interval = token.split(".")
        if interval not in INTERVAL_SECONDS:
            raise ValueError(f"not an interval: {interval!r}")
        if not symbol.isalnum():
            raise ValueError(f"not a symbol: {symbol!r}")
        return cls(datetime.fromtimestamp(int(millis) / 1000, UTC), symbol, interval)


@dataclass(frozen=True)
class Window:
    """Open times a list is limited to (the date drill-down): ``since <= open time < until``."""

    since: datetime | None = None
    until: datetime | None = None


def _klines(pipeline: pipelines.Pipeline) -> list[Kline]:
    return list(Kline.objects.raw_aggregate(pipeline))


def _span(interval: str, count: int) -> timedelta:
    """The first window: twice ``count`` intervals, and at least 200 (a merged list asks each stream for a few)."""
    return timedelta(milliseconds=2 * max(count, FIRST_WINDOW) * interval_ms(interval))


def older(
    symbol: str, interval: str, count: int, *, before: datetime | None, window: Window = Window(), now: datetime
) -> list[Kline]:
    """The newest ``count`` klines of one stream opened before ``before`` (``None``: any), newest first."""
    end = min((t for t in (before, window.until) if t is not None), default=None)
    rows: list[Kline] = []
    for start in pipelines.lookback(end or now, _span(interval, count)):
        since = max((t for t in (start, window.since) if t is not None), default=None)
        rows = _klines(pipelines.newest_first(symbol, interval, count, since=since, before=end))
        if len(rows) >= count or since == window.since:
            break
    return rows


def newer(symbol: str, interval: str, count: int, *, after: datetime, window: Window = Window()) -> list[Kline]:
    """The oldest ``count`` klines of one stream opened after ``after``, oldest first."""
    last = (window.until or datetime.max.replace(tzinfo=UTC)) - MS  # klines_between's bound is inclusive
    rows: list[Kline] = []
    for bound in pipelines.widening(after + MS, _span(interval, count), forward=True):
        until = last if bound is None else min(last, bound)
        rows = _klines(pipelines.klines_between(symbol, interval, after + MS, until, count, newest_first=False))
        if len(rows) >= count or until >= last:
            break
    return rows


def _order(kline: Kline) -> Cursor:
    return Cursor.of(kline)


Read = Callable[[str, str, int], list[Kline]]  # (symbol, interval, how many) -> a stream's part, in list order


def _ahead(row: Kline, bound: Cursor | None, *, reverse: bool) -> bool:
    """Whether ``row`` comes before ``bound`` in list order (no bound: the page is not full, so yes)."""
    return bound is None or (_order(row) > bound if reverse else _order(row) < bound)


def _merge(streams: Sequence[tuple[str, str]], count: int, read: Read, *, reverse: bool) -> list[Kline]:
    """The first ``count`` klines of several streams in list order, asking each for only its likely share.

    Each stream is asked for ``count / len(streams) + 1`` first; a stream whose
    whole answer ranks above the merged ``count``-th kline may hold more that
    belong in the page, and is asked again for four times as many (at most ``count``).
    """
    asked = dict.fromkeys(streams, count if len(streams) == 1 else min(count, -(-count // len(streams)) + 1))
    parts = {stream: read(*stream, asked[stream]) for stream in streams}
    while True:
        merged = list(heapq.merge(*parts.values(), key=_order, reverse=reverse))[:count]
        bound = _order(merged[-1]) if len(merged) == count else None
        unsure = [
            s
            for s in streams
            if asked[s] < count and len(parts[s]) == asked[s] and _ahead(parts[s][-1], bound, reverse=reverse)
        ]
        if not unsure:
            return merged
        for stream in unsure:
            asked[stream] = min(count, asked[stream] * 4)
            parts[stream] = read(*stream, asked[stream])


def page_before(
    streams: Sequence[tuple[str, str]], count: int, *, cursor: Cursor | None, window: Window, now: datetime
) -> list[Kline]:
    """Up to ``count`` klines of these streams that come after ``cursor`` in the list (newest open time first)."""

    def read(symbol: str, interval: str, n: int) -> list[Kline]:
        before = None if cursor is None else cursor.open_time
        if cursor is not None and (symbol, interval) < (cursor.symbol, cursor.interval):
            before += MS  # ties on open time: this stream sorts below the cursor's, so it keeps that open time
        return older(symbol, interval, n, before=before, window=window, now=now)

    return _merge(streams, count, read, reverse=True)


def page_after(streams: Sequence[tuple[str, str]], count: int, *, cursor: Cursor, window: Window) -> list[Kline]:
    """Up to ``count`` klines of these streams that come just before ``cursor`` in the list, in list order."""

    def read(symbol: str, interval: str, n: int) -> list[Kline]:
        after = cursor.open_time
        if (symbol, interval) > (cursor.symbol, cursor.interval):
            after -= MS  # ties on open time: this stream sorts above the cursor's
        return newer(symbol, interval, n, after=after, window=window)

    return _merge(streams, count, read, reverse=False)[::-1]
