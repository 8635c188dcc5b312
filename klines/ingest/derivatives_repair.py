"""Hole repair for mark-price klines and funding rates: what is missing in the middle of the record, from REST.

The recorder (:mod:`klines.ingest.derivatives`) extends each record at both ends;
a hole inside it (a failed write, an outage of the database, a document deleted)
is found here. A :class:`DerivativesRepair` thread scans every ``every_seconds``
(and once at start), between rounds of the recorder, through the ingest's paced REST client:

* mark-price klines, per (symbol, interval): a count from the oldest to the
  newest stored tells whether anything is missing; only then are the open times
  read, :data:`CHUNK` intervals at a time, and each hole fetched over exactly its range;
* funding rates, per symbol: Binance settles every 1, 2, 4 or 8 hours and a
  symbol's period may change, so a hole is a gap between stored funding times
  longer than 8 hours (and a minute), or half again as long as the gaps either side of it (:func:`funding_holes`).

The database is the only durable state: after a crash the next scan finds what
is still missing. A range REST has nothing for is not asked again by this process.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from django.db import DatabaseError
from pymongo.errors import PyMongoError

from klines.backoff import Backoff
from klines.binance.intervals import interval_ms
from klines.binance.parse import MalformedMessage, datetime_to_ms, ms_to_datetime
from klines.binance.rest import BinanceRest, RestError
from klines.ingest.derivatives import fetch_funding, fetch_mark_klines
from klines.ingest.gaps import Gap, find_gaps
from klines.ingest.periodic import scan_periodically
from klines.store.derivatives import (
    funding_times,
    mark_count_between,
    mark_open_times,
    mark_span,
    save_funding,
    save_mark_klines,
)

logger = logging.getLogger(__name__)

CHUNK = 5000  # intervals of open times read per query
RETRY = Backoff(initial=1.0, maximum=30.0)
FUNDING_MAX_MS = 8 * 3_600_000  # Binance's longest funding period
FUNDING_JITTER_MS = 60_000  # Binance's oldest funding times are a few milliseconds past the hour


def funding_holes(times_ms: Sequence[int]) -> list[tuple[int, int]]:
    """Pure: ``(after, before)`` for each gap between consecutive funding times (sorted) that is a hole."""
    gaps = [b - a for a, b in zip(times_ms, times_ms[1:], strict=False)]
    holes = []
    for n, gap in enumerate(gaps):
        beside = [gaps[m] for m in (n - 1, n + 1) if 0 <= m < len(gaps)]
        if gap > FUNDING_MAX_MS + FUNDING_JITTER_MS or (beside and gap * 2 > 3 * max(beside)):
            holes.append((times_ms[n], times_ms[n + 1]))
    return holes


@dataclass
class DerivativesRepairStats:
    scans: int = 0
    holes: int = 0  # holes found (one still missing is found again by the next scan)
    fetched: int = 0  # mark-price klines and funding rates stored for holes


class DerivativesRepair:
    def __init__(
        self,
        *,
        rest: BinanceRest,
        symbols: Callable[[], Iterable[str]],
        mark_intervals: Sequence[str],
        stop: threading.Event,
        every_seconds: float,
        idle: Callable[[], bool] = lambda: True,
        chunk: int = CHUNK,
    ) -> None:
        """A scan starts only when ``idle()`` (the recorder is between rounds)."""
        self.rest = rest
        self.symbols = symbols
        self.mark_intervals = tuple(mark_intervals)
        self.stop = stop
        self.every_seconds = every_seconds
        self.idle = idle
        self.chunk = chunk
        self.stats = DerivativesRepairStats()
        self._empty: set[tuple[str, str, int, int]] = set()  # ranges REST had nothing for (this process)

    def run(self) -> None:
        scan_periodically(
            self.scan,
            name="mark price and funding hole repair",
            idle=self.idle,
            stop=self.stop,
            every_seconds=self.every_seconds,
            retry=RETRY,
            failures=(RestError, DatabaseError, PyMongoError, MalformedMessage),
            log=logger,
        )

    def scan(self) -> None:
        """Find and fetch every hole of every recorded symbol, once."""
        server_ms = self.rest.server_time_ms()
        for symbol in self.symbols():
            for interval in self.mark_intervals:
                for gap in self.mark_holes(symbol, interval):
                    if self.stop.is_set():
                        return
                    self._fill(symbol, interval, gap.first_ms, gap.last_ms, server_ms)
            for after, before in funding_holes([datetime_to_ms(t) for t in funding_times(symbol)]):
                if self.stop.is_set():
                    return
                self._fill(symbol, "funding", after + 1, before - 1, server_ms)
        self.stats.scans += 1

    def mark_holes(self, symbol: str, interval: str) -> list[Gap]:
        """The holes between the oldest and the newest stored mark-price kline of ``symbol`` at ``interval``."""
        span = mark_span(symbol, interval)
        if span is None:
            return []
        step = interval_ms(interval)
        oldest, newest = datetime_to_ms(span[0]), datetime_to_ms(span[1])
        if mark_count_between(symbol, interval, span[0], span[1]) == (newest - oldest) // step + 1:
            return []
        holes: list[Gap] = []
        previous: list[int] = []
        since = oldest
        while since <= newest:
            until = min(newest, since + (self.chunk - 1) * step)
            times = mark_open_times(symbol, interval, ms_to_datetime(since), ms_to_datetime(until))
            opens = previous + [datetime_to_ms(t) for t in times]
            holes += find_gaps(opens, interval_ms=step)
            previous = opens[-1:]
            since = until + step
        return holes

    def _fill(self, symbol: str, kind: str, first_ms: int, last_ms: int, server_ms: int) -> None:
        """Fetch ``[first_ms, last_ms]`` of the mark-price klines at interval ``kind``, or of the fundings."""
        key = (symbol, kind, first_ms, last_ms)
        if key in self._empty:
            return
        self.stats.holes += 1
        if kind == "funding":
            stored = save_funding(fetch_funding(self.rest, symbol, first_ms, last_ms))
        else:
            fetched = fetch_mark_klines(self.rest, symbol, kind, first_ms, last_ms, server_ms=server_ms)
            stored = save_mark_klines(fetched)
        what = "funding rates" if kind == "funding" else f"{kind} mark-price klines"
        first, last = ms_to_datetime(first_ms), ms_to_datetime(last_ms)
        if stored:
            self.stats.fetched += stored
            logger.warning("hole repair: %d %s of %s stored, from %s to %s", stored, what, symbol, first, last)
        else:
            self._empty.add(key)
            logger.info("hole repair: the exchange has no %s of %s from %s to %s", what, symbol, first, last)
