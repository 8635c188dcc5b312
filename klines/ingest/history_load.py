"""The first start's history: the newest ``KLINE_HISTORY`` closed klines of each (symbol, interval).

A :class:`HistoryLoader` thread is asked for a stream once its live connection is
up (and for a new listing's streams once theirs is), so it never holds up the
stream: the Backfiller has already fetched the newest :data:`~klines.window.HISTORY`
the seed's window on ``/`` needs, and the stream stores every close from then on.

For each stream it reads how many of the newest ``history`` klines (by the
exchange's clock) are stored: one index-served count. When some are missing
below the oldest stored there (a first start: all but the Backfiller's; after
a crash mid-history: the rest), it fetches them newest page first
(``endTime``, ``limit`` up to 1,500) and inserts each page straight into the
store (:func:`klines.store.writes.insert_new`: the unique key stores each
kline once), newest chunk first, so the record stays contiguous and a restart
continues below what is stored. Holes inside the window are the hole repair's.

Live closes are never queued behind it: it does not use the writer's queue,
before each insert it waits until the writer has nothing queued, and after it
pauses as long as the insert took (at most half the database's time). Its REST
requests keep the minute's weight within :data:`WEIGHT_SHARE` of
``BINANCE_REST_WEIGHT_PER_MINUTE``, so the backfill and the hole repair always
have the rest.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from django.db import DatabaseError
from pymongo.errors import PyMongoError

from klines.backoff import Backoff
from klines.binance.parse import ClosedKline, MalformedMessage, datetime_to_ms, ms_to_datetime, parse_rest_row
from klines.binance.rest import BinanceRest, RestError, kline_weight
from klines.ingest.backfill import MAX_LIMIT, Page
from klines.ingest.supervise import Spawn, unsupervised
from klines.store.reads import count_between, open_times_between
from klines.store.writes import insert_new

logger = logging.getLogger(__name__)

WEIGHT_SHARE = 0.5  # of the REST weight budget; the backfill and the hole repair keep the rest
INSERT_CHUNK = 250  # klines an insert (a live close waits at most for one: ~0.1 s on SecantusDB)
CLOCK_MARGIN_MS = 1000  # under the exchange's clock as read (a round trip's error): never ask for an open kline
WAKE_SECONDS = 0.5
WRITER_WAIT_SECONDS = 0.02
RETRY = Backoff(initial=2.0, maximum=60.0)  # REST or the database failed

Stream = tuple[str, str]  # (SYMBOL, interval)


@dataclass(frozen=True, kw_only=True)
class Want:
    """Fetch ``count`` klines, the newest opening at or before ``end_ms``, going back."""

    end_ms: int
    count: int


def history_window(server_ms: int, interval_ms: int, history: int) -> tuple[int, int]:
    """``[since, until)``: the open times of the newest ``history`` klines closed by ``server_ms``."""
    until = server_ms - interval_ms + 1  # a kline opening at t has closed by server_ms when t <= server_ms - interval
    return until - history * interval_ms, until


def missing_below(stored_ms: Sequence[int], *, server_ms: int, interval_ms: int, history: int) -> Want | None:
    """Pure: what of the newest ``history`` closed klines lies below the oldest of them stored (``stored_ms``).

    Nothing stored in the window: all of it, from the newest closed. ``None``: the window is stored from its
    start (a hole above the oldest stored is the hole repair's).
    """
    since, until = history_window(server_ms, interval_ms, history)
    inside = [t for t in stored_ms if since <= t < until]
    if not inside:
        return Want(end_ms=until - 1, count=history)
    oldest = min(inside)
    count = (oldest - since) // interval_ms  # grid slots at or after ``since`` and before ``oldest``
    return Want(end_ms=oldest - 1, count=count) if count > 0 else None


@dataclass
class HistoryStats:
    streams: int = 0  # streams whose history is complete (or as long as the exchange has)
    requests: int = 0
    weight: int = 0
    fetched: int = 0  # closed klines received
    stored: int = 0
    duplicates: int = 0  # already stored (by the stream, the backfill, another ingest)


class HistoryLoader:
    def __init__(
        self,
        *,
        rest: BinanceRest,
        history: int,
        interval_ms: Callable[[str], int],
        stop: threading.Event,
        writer_busy: Callable[[], bool] = lambda: False,
        on_stored: Callable[[list[ClosedKline]], None] = lambda klines: None,
        retry: Backoff = RETRY,
    ) -> None:
        """``writer_busy()``: live closes are queued (inserts wait); ``on_stored`` gets each page's newly stored."""
        self.rest = rest
        self.history = history
        self.interval_ms = interval_ms
        self.stop = stop
        self.writer_busy = writer_busy
        self.on_stored = on_stored
        self.retry = retry
        self.stats = HistoryStats()
        self._pending: dict[Stream, None] = {}  # in order of request
        self._done: set[Stream] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def request(self, streams: Iterable[Stream]) -> None:
        """Load the history of ``streams`` (their live connection is up); once per stream and process."""
        with self._lock:
            for symbol, interval in streams:
                stream = (symbol.upper(), interval)
                if stream not in self._done:
                    self._pending[stream] = None
        self._wake.set()

    @property
    def pending(self) -> int:
        """Streams waiting for their history."""
        with self._lock:
            return len(self._pending)

    def start(self, spawn: Spawn = unsupervised) -> None:
        self._thread = spawn("kline-history", self._run)

    def _take(self) -> list[Stream]:
        with self._lock:
            batch = list(self._pending)
            self._pending.clear()
            self._wake.clear()
        return batch

    def _run(self) -> None:
        attempt = 0
        while not self.stop.is_set():
            self._wake.wait(WAKE_SECONDS)
            batch = self._take()
            if not batch:
                continue
            failed = self._round(batch)
            if not failed:
                attempt = 0
                continue
            self.request(failed)
            delay = self.retry.delay(attempt)
            attempt += 1
            logger.info("history: retrying %d streams in %.0fs", len(failed), delay)
            self.stop.wait(delay)

    def _round(self, batch: list[Stream]) -> list[Stream]:
        """Load each stream's history; return those that failed (to retry)."""
        started = time.monotonic()
        stored, requests, weight = self.stats.stored, self.stats.requests, self.stats.weight
        failed: list[Stream] = []
        clock: tuple[int, float] | None = None  # the exchange's clock read this round, and when (monotonic)
        for stream in batch:
            if self.stop.is_set():
                return []
            try:
                clock = clock or (self.rest.server_time_ms(), time.monotonic())
                # The exchange's clock now (by ours since the reading), less a margin: never ask for an open kline.
                server_ms = clock[0] + int((time.monotonic() - clock[1]) * 1000) - CLOCK_MARGIN_MS
                self.load(*stream, server_ms=server_ms)
            except (RestError, DatabaseError, PyMongoError) as exc:
                failed.append(stream)
                if len(failed) == 1 and not self.stop.is_set():
                    logger.warning("history of %s %s not loaded: %s", *stream, exc)
                continue
            if self.stop.is_set():  # maybe cut short: the next start continues it
                return []
            with self._lock:
                self._done.add(stream)
            self.stats.streams += 1
        logger.info(
            "history: %d klines stored for %d streams in %d requests (weight %d, %.1fs)%s",
            self.stats.stored - stored,
            len(batch) - len(failed),
            self.stats.requests - requests,
            self.stats.weight - weight,
            time.monotonic() - started,
            f"; {len(failed)} to retry" if failed else "",
        )
        return failed

    def load(self, symbol: str, interval: str, *, server_ms: int) -> None:
        """Store what is missing of the newest ``history`` klines of one stream closed by ``server_ms``."""
        step = self.interval_ms(interval)
        since, until = (ms_to_datetime(t) for t in history_window(server_ms, step, self.history))
        if count_between(symbol, interval, since, until) >= self.history:
            return
        stored = [datetime_to_ms(t) for t in open_times_between(symbol, interval, since, until)]
        want = missing_below(stored, server_ms=server_ms, interval_ms=step, history=self.history)
        end, left = (want.end_ms, want.count) if want is not None else (0, 0)
        while left > 0 and not self.stop.is_set():
            page = Page(start_ms=None, end_ms=end, limit=min(MAX_LIMIT, left))
            klines = [k for k in self._fetch(symbol, interval, page) if datetime_to_ms(k.open_time) <= end]
            self._store(klines)
            left -= len(klines)
            if len(klines) < page.limit:  # the exchange has no older kline (a recent listing)
                break
            end = datetime_to_ms(klines[0].open_time) - 1
        logger.debug("history: %s %s loaded, %d klines older than the exchange has", symbol, interval, left)

    def _fetch(self, symbol: str, interval: str, page: Page) -> list[ClosedKline]:
        """One page, oldest first, within the history's share of the weight budget."""
        weight = kline_weight(page.limit)
        rows = self.rest.get("/fapi/v1/klines", page.params(symbol, interval), weight=weight, share=WEIGHT_SHARE)
        self.stats.requests += 1
        self.stats.weight += weight
        if not isinstance(rows, list):
            raise RestError(f"/fapi/v1/klines for {symbol}: expected a list, got {str(rows)[:200]}")
        klines = []
        for row in rows:
            try:
                klines.append(parse_rest_row(row, symbol=symbol, interval=interval))
            except MalformedMessage as exc:
                logger.warning("history: skipped a malformed REST row for %s: %s", symbol, exc)
        self.stats.fetched += len(klines)
        return sorted(klines, key=lambda k: k.open_time)

    def _store(self, klines: list[ClosedKline]) -> None:
        """Insert ``klines`` (oldest first) newest chunk first, each after the writer's queue is empty."""
        for end in range(len(klines), 0, -INSERT_CHUNK):
            chunk = klines[max(0, end - INSERT_CHUNK) : end]
            while self.writer_busy() and not self.stop.wait(WRITER_WAIT_SECONDS):
                pass
            if self.stop.is_set():
                return
            started = time.monotonic()
            added, taken = insert_new(chunk)
            self.stop.wait(time.monotonic() - started)  # at most half the database's time (and the GIL's)
            self.stats.stored += len(added)
            self.stats.duplicates += len(taken)
            if added:
                self.on_stored(added)
