"""Hole repair: find every hole in the stored record, whatever its age, and fetch exactly it from REST.

A :class:`HoleRepair` thread per interval scans each symbol's whole stored
range, from its oldest stored kline to its newest, every ``repair_seconds``
(and once at start). It reads only open times, from the ``kline_latest``
index, :data:`CHUNK` intervals at a time, so memory and each query stay
bounded with millions of klines. Each hole is fetched page by page over
exactly its range (``startTime``/``endTime``) through the shared, weight-paced
REST client, and handed to the writer.

The database is the only durable state: a hole counts as repaired once its
klines are stored, and after a crash the next scan finds whatever is still
missing. A range REST has nothing for (the exchange did not trade) is an
exchange gap: recorded in the database (:mod:`klines.store.exchange_gaps`),
never fetched again, and reported as such by ``klines_status``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import DatabaseError
from pymongo.errors import PyMongoError

from klines.backoff import Backoff
from klines.binance.parse import ClosedKline, datetime_to_ms, ms_to_datetime
from klines.binance.rest import BinanceRest, RestError
from klines.ingest.backfill import PAGE_LIMIT, Page, closed_before, fetch_page
from klines.ingest.gaps import Gap, find_gaps, without
from klines.ingest.periodic import scan_periodically
from klines.ingest.supervise import Spawn, unsupervised
from klines.store.exchange_gaps import exchange_gaps, remember_exchange_gap
from klines.store.reads import count_between, newest_open_time, oldest_open_time, open_times_between

logger = logging.getLogger(__name__)

CHUNK = 5000  # intervals of open times read per query
RETRY = Backoff(initial=1.0, maximum=30.0)  # REST or the database failed during a scan


def unanswered(gap: Gap, got_ms: Iterable[int], interval_ms: int) -> list[Gap]:
    """Pure: the parts of ``gap`` REST returned no kline for."""
    opens = sorted({gap.first_ms - interval_ms, *(t for t in got_ms if gap.first_ms <= t <= gap.last_ms)})
    return find_gaps([*opens, gap.last_ms + interval_ms], interval_ms=interval_ms)


@dataclass
class RepairStats:
    scans: int = 0
    holes: int = 0  # holes found (a hole still unstored is found again by the next scan)
    fetched: int = 0  # klines fetched for holes and handed to the writer
    exchange_gaps: int = 0  # ranges REST had nothing for, recorded


class HoleRepair:
    def __init__(
        self,
        *,
        rest: BinanceRest,
        interval: str,
        interval_ms: int,
        symbols: Callable[[], Iterable[str]],
        deliver: Callable[[ClosedKline], bool],
        stop: threading.Event,
        every_seconds: float,
        idle: Callable[[], bool] = lambda: True,
        chunk: int = CHUNK,
        retry: Backoff = RETRY,
    ) -> None:
        """``symbols()`` are those recorded now; ``deliver`` queues a kline for the writer (``False``: stopping);
        a scan starts only when ``idle()`` (the backfill is not fetching the same klines)."""
        self.rest = rest
        self.interval = interval
        self.interval_ms = interval_ms
        self.symbols = symbols
        self.deliver = deliver
        self.stop = stop
        self.every_seconds = every_seconds
        self.idle = idle
        self.chunk = chunk
        self.retry = retry
        self.stats = RepairStats()
        self._thread: threading.Thread | None = None
        self._oldest_seen: dict[str, datetime] = {}  # symbol -> oldest stored open time found (a cache)

    def start(self, spawn: Spawn = unsupervised) -> None:
        self._thread = spawn(f"hole-repair {self.interval}", self._run)

    def _run(self) -> None:
        scan_periodically(
            self.scan,
            name=f"hole repair {self.interval}",
            idle=self.idle,
            stop=self.stop,
            every_seconds=self.every_seconds,
            retry=self.retry,
            failures=(RestError, DatabaseError, PyMongoError),
            log=logger,
        )

    def scan(self) -> None:
        """Scan every symbol's whole stored range and fetch its holes."""
        self.stats.scans += 1
        started, holes_before, fetched_before = time.monotonic(), self.stats.holes, self.stats.fetched
        server_ms = self.rest.server_time_ms()
        symbols = list(self.symbols())
        for symbol in symbols:
            if self.stop.is_set():
                return
            for gap in self.holes(symbol):
                if not self.fill(symbol, gap, server_ms=server_ms):
                    return
        logger.info(
            "hole repair scan done: %s, %d symbols, %d holes, %d klines fetched (%.2fs)",
            self.interval,
            len(symbols),
            self.stats.holes - holes_before,
            self.stats.fetched - fetched_before,
            time.monotonic() - started,
        )

    def holes(self, symbol: str) -> list[Gap]:
        """The holes between ``symbol``'s oldest and newest stored klines, but for known exchange gaps."""
        oldest, newest = self._oldest(symbol), newest_open_time(symbol, self.interval)
        if oldest is None or newest is None:
            return []
        known = [(datetime_to_ms(f), datetime_to_ms(la)) for f, la in exchange_gaps(symbol, self.interval)]
        step = timedelta(milliseconds=self.chunk * self.interval_ms)
        holes: list[Gap] = []
        previous: list[int] = []
        since = oldest
        while since <= newest and not self.stop.is_set():
            until = min(since + step, newest + timedelta(milliseconds=1))
            slots = -((datetime_to_ms(since) - datetime_to_ms(until)) // self.interval_ms)  # opens on the grid
            if count_between(symbol, self.interval, since, until) == slots:  # complete: no need to read them
                opens = [*previous, datetime_to_ms(since)]  # only a hole just before it is possible
                last = [datetime_to_ms(since) + (slots - 1) * self.interval_ms]
            else:
                times = open_times_between(symbol, self.interval, since, until)
                opens = previous + [datetime_to_ms(t) for t in times]
                last = opens[-1:]
            for gap in find_gaps(opens, interval_ms=self.interval_ms):
                holes.extend(without(gap, known, self.interval_ms))
            previous = last
            since = until
        self.stats.holes += len(holes)
        if holes:
            missing = sum(g.missing for g in holes)
            logger.warning(
                "hole repair: %s %s has %d holes (%d klines) from %s; fetching them",
                symbol,
                self.interval,
                len(holes),
                missing,
                ms_to_datetime(holes[0].first_ms),
            )
        return holes

    def _oldest(self, symbol: str) -> datetime | None:
        """The oldest stored open time. Reading it costs a read of the whole record on SecantusDB, so after the
        first scan only what was stored below the last one found (an archive import) is looked for."""
        known = self._oldest_seen.get(symbol)
        older = oldest_open_time(symbol, self.interval, before=known)
        if older is not None:
            self._oldest_seen[symbol] = older
        return older or known

    def fill(self, symbol: str, gap: Gap, *, server_ms: int) -> bool:
        """Fetch ``gap``'s klines and hand them to the writer; record what REST has not. ``False`` if stopping."""
        got: list[int] = []
        malformed = 0
        start = gap.first_ms
        while start <= gap.last_ms:
            wanted = (gap.last_ms - start) // self.interval_ms + 1
            page = Page(start_ms=start, limit=min(wanted, PAGE_LIMIT), end_ms=gap.last_ms)
            fetched, bad = fetch_page(self.rest, symbol, self.interval, page)
            malformed += bad
            closed = [k for k in closed_before(fetched, server_ms) if datetime_to_ms(k.open_time) <= gap.last_ms]
            for kline in closed:
                if not self.deliver(kline):
                    return False
                self.stats.fetched += 1
                got.append(datetime_to_ms(kline.open_time))
            if not closed:
                break
            start = max(got) + self.interval_ms
        if malformed:
            return True  # what REST sent could not be read: no proof the exchange lacks it; the next scan retries
        for missing in unanswered(gap, got, self.interval_ms):
            self._exchange_gap(symbol, missing)
        return True

    def _exchange_gap(self, symbol: str, gap: Gap) -> None:
        first, last = ms_to_datetime(gap.first_ms), ms_to_datetime(gap.last_ms)
        remember_exchange_gap(symbol, self.interval, first, last)
        self.stats.exchange_gaps += 1
        logger.warning(
            "hole repair: the exchange has no %s %s klines from %s to %s (%d); recorded as an exchange gap",
            symbol,
            self.interval,
            first,
            last,
            gap.missing,
        )
