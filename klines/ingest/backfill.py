"""Fetch missed closed klines from ``GET /fapi/v1/klines`` and hand them to the writer.

Planning is pure (:func:`first_page`, :func:`next_page`; weights: :func:`klines.binance.rest.kline_weight`):
pages start at the next open time wanted, ask only for klines already closed
by the exchange's clock, and are at most :data:`PAGE_LIMIT` long. The
:class:`Backfiller` thread runs on request — at start, after every reconnect,
when the stream skips a kline, when the writer had to drop one — and retries
with backoff when REST or the database fails. Its first complete backfill of a
symbol in a process also fetches the newest :data:`HISTORY` closed klines,
whatever is stored, and refetches the gaps below them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import DatabaseError
from pymongo.errors import PyMongoError

from klines.backoff import Backoff
from klines.binance.parse import ClosedKline, MalformedMessage, datetime_to_ms, ms_to_datetime, parse_rest_row
from klines.binance.rest import BinanceRest, RestError, kline_weight
from klines.ingest.gaps import classify_gaps
from klines.ingest.supervise import Spawn, unsupervised
from klines.store.reads import newest_open_time, stored_times_between
from klines.window import HISTORY

logger = logging.getLogger(__name__)

# A process's first backfill of a symbol fetches the newest HISTORY (11) closed klines, whatever is
# stored: the payload's 10 and the 11th it judges the oldest against.
# Binance: limit max 1500; weight 1 below 100, 2 below 500, 5 up to 1000, 10 above.
# 499 is the largest limit of the weight-2 band, the fewest weight per kline.
MAX_LIMIT = 1500
PAGE_LIMIT = 499
WAKE_SECONDS = 0.5
# On a symbol's first backfill, look this many intervals back from the newest kline stored before
# that history for holes an earlier run left (klines dropped or skipped and not yet refetched).
HOLE_SCAN = 1000
RETRY = Backoff(initial=1.0, maximum=10.0)  # a failed round (REST or database down)


@dataclass(frozen=True, kw_only=True)
class Page:
    """One ``/fapi/v1/klines`` request: from ``start_ms`` (or the newest, when ``None``), ``limit`` rows."""

    start_ms: int | None
    limit: int
    end_ms: int | None = None  # the last open time wanted (a hole's end); ``None``: up to now

    def params(self, symbol: str, interval: str) -> dict[str, Any]:
        params: dict[str, Any] = {"symbol": symbol.upper(), "interval": interval, "limit": self.limit}
        if self.start_ms is not None:
            params["startTime"] = self.start_ms
        if self.end_ms is not None:
            params["endTime"] = self.end_ms
        return params


def first_page(
    next_open_ms: int | None, *, server_ms: int, interval_ms: int, history: int = HISTORY, page_limit: int = PAGE_LIMIT
) -> Page | None:
    """The first request for klines opening at ``next_open_ms`` that closed before ``server_ms``.

    ``None`` for ``next_open_ms`` means nothing is stored: ask for the newest
    ``history`` closed klines (plus one, the still-open kline Binance includes).
    Returns ``None`` when no such kline has closed yet.
    """
    if next_open_ms is None:
        return Page(start_ms=None, limit=min(history + 1, MAX_LIMIT))
    closed = (server_ms - next_open_ms) // interval_ms  # kline k closes at next_open + (k+1)*interval - 1
    if closed <= 0:
        return None
    return Page(start_ms=next_open_ms, limit=min(closed, page_limit))


def next_page(previous: Page, closed: list[ClosedKline], *, server_ms: int, interval_ms: int) -> Page | None:
    """The request after ``previous`` returned ``closed``; ``None`` when caught up."""
    if previous.start_ms is None or not closed:
        return None
    last_open = max(datetime_to_ms(k.open_time) for k in closed)
    return first_page(last_open + interval_ms, server_ms=server_ms, interval_ms=interval_ms)


def closed_before(klines: Iterable[ClosedKline], server_ms: int) -> list[ClosedKline]:
    """Only the klines whose close time has passed on the exchange's clock, oldest first."""
    return sorted((k for k in klines if datetime_to_ms(k.close_time) < server_ms), key=lambda k: k.open_time)


def start_after(mark_ms: int | None, newest_open_ms: int | None, interval_ms: int) -> int | None:
    """Where to fetch from: after the newest known kline, or from an earlier mark (a gap or a drop)."""
    if newest_open_ms is None:
        return mark_ms
    after_newest = newest_open_ms + interval_ms
    return after_newest if mark_ms is None else min(mark_ms, after_newest)


@dataclass
class BackfillStats:
    rounds: int = 0
    fetched: int = 0  # closed klines received from REST and handed to the writer
    malformed: int = 0
    failures: int = 0


class Backfiller:
    def __init__(
        self,
        *,
        rest: BinanceRest,
        interval: str,
        interval_ms: int,
        deliver: Callable[[ClosedKline], bool],
        stop: threading.Event,
        on_newest: Callable[[str, datetime], None] = lambda symbol, open_time: None,
        newest_open: Callable[..., datetime | None] = newest_open_time,
        stored_times: Callable[[str, str, datetime, datetime], list[tuple[datetime, datetime]]] = stored_times_between,
        retry: Backoff = RETRY,
        started: datetime | None = None,
    ) -> None:
        """``newest_open(symbol, interval, before=None)`` and ``stored_times`` read the store;
        klines stored before ``started`` (default: now) were stored by an earlier process."""
        self.rest = rest
        self.interval = interval
        self.interval_ms = interval_ms
        self.deliver = deliver
        self.stop = stop
        self.on_newest = on_newest
        self.newest_open = newest_open
        self.stored_times = stored_times
        self.retry = retry
        self.started = started or datetime.now(UTC)
        self.stats = BackfillStats()
        self._ensured: set[str] = set()  # symbols whose history this process fetched and scanned for holes
        self._pending: dict[str, int | None] = {}  # symbol -> earliest open time to refetch (None: newest stored)
        self._delivered: dict[str, int] = {}  # symbol -> newest open time handed to the writer (maybe not yet stored)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._retry_now = threading.Event()
        self._thread: threading.Thread | None = None
        self._busy = False  # a round is running

    def request(self, symbols: Iterable[str], *, from_ms: int | None = None) -> None:
        """Backfill ``symbols`` from the newest stored kline, or from ``from_ms`` if that is earlier."""
        with self._lock:
            for symbol in symbols:
                symbol = symbol.upper()
                marks = [m for m in (self._pending.get(symbol), from_ms) if m is not None]
                self._pending[symbol] = min(marks) if marks else None
        self._wake.set()

    @property
    def pending(self) -> int:
        """Symbols waiting for a backfill."""
        with self._lock:
            return len(self._pending)

    @property
    def idle(self) -> bool:
        """No round running and none waiting (the hole repair waits for this, not to fetch the same klines)."""
        with self._lock:
            return not self._pending and not self._busy

    def forget(self, kline: ClosedKline) -> None:
        """The writer did not store ``kline`` (rejected it): it no longer counts as delivered."""
        with self._lock:
            delivered = self._delivered.get(kline.symbol)
            open_ms = datetime_to_ms(kline.open_time)
            if delivered is not None and delivered >= open_ms:
                self._delivered[kline.symbol] = open_ms - self.interval_ms

    def retry_now(self) -> None:
        """Cut a retry wait short (the database is back)."""
        self._retry_now.set()

    def start(self, spawn: Spawn = unsupervised) -> None:
        self._thread = spawn("kline-backfill", self._run)

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _take(self) -> dict[str, int | None]:
        with self._lock:
            batch, self._pending = self._pending, {}
            self._busy = bool(batch)
            self._wake.clear()
        return batch

    def _run(self) -> None:
        attempt = 0
        while not self.stop.is_set():
            self._wake.wait(WAKE_SECONDS)
            batch = self._take()
            if not batch:
                continue
            self._retry_now.clear()  # a recovery signalled from here on cuts the wait below short
            try:
                failed = self._round(batch)
            finally:
                self._busy = False
            if not failed:
                attempt = 0
                continue
            for symbol, mark in failed.items():
                self.request([symbol], from_ms=mark)
            delay = self.retry.delay(attempt)
            attempt += 1
            logger.info("backfill: retrying %d symbols in %.1fs", len(failed), delay)
            deadline = time.monotonic() + delay
            while not (self.stop.is_set() or self._retry_now.is_set()) and time.monotonic() < deadline:
                self._retry_now.wait(min(WAKE_SECONDS, deadline - time.monotonic()))

    def _round(self, batch: dict[str, int | None]) -> dict[str, int | None]:
        """Backfill every symbol of ``batch``; return those that failed (to retry)."""
        self.stats.rounds += 1
        started, fetched_before, requests_before = time.monotonic(), self.stats.fetched, self.rest.requests
        failed: dict[str, int | None] = {}
        server_ms = None
        for symbol, mark in batch.items():
            if self.stop.is_set():
                failed[symbol] = mark
                continue
            try:
                # One clock reading per round: klines closing after it come from the stream,
                # which was connected before the round started, or from the next round.
                server_ms = server_ms or self.rest.server_time_ms()
                self.backfill_symbol(symbol, mark, server_ms=server_ms)
            except (RestError, DatabaseError, PyMongoError) as exc:
                self.stats.failures += 1
                failed[symbol] = mark
                if len(failed) == 1:
                    logger.warning("backfill of %s failed: %s", symbol, exc)
        logger.info(
            "backfill: %d closed klines from REST for %d symbols in %d requests (%.1fs)%s",
            self.stats.fetched - fetched_before,
            len(batch),
            self.rest.requests - requests_before,
            time.monotonic() - started,
            f"; {len(failed)} to retry" if failed else "",
        )
        return failed

    def backfill_symbol(self, symbol: str, mark_ms: int | None, *, server_ms: int) -> None:
        """Hand the writer every closed kline of ``symbol`` after the newest stored (or from ``mark_ms``).

        The first time in this process, whatever is stored (the stream may have stored a newer
        close already), also fetch the newest :data:`HISTORY` closed klines and refetch what the
        record misses below them. Only a complete success marks the symbol.
        """
        newest = self.newest_open(symbol, self.interval)
        if newest is not None:
            self.on_newest(symbol, newest)
        if symbol not in self._ensured:
            history = closed_before(self._fetch(symbol, Page(start_ms=None, limit=HISTORY + 1)), server_ms)[-HISTORY:]
            if history:
                missing = self._first_missing(symbol, history[0].open_time, history[-1].open_time)
                if missing is not None:
                    mark_ms = missing if mark_ms is None else min(mark_ms, missing)
            if not self._hand_over(symbol, history):
                return
        # What this process already handed to the writer is stored or queued: no need to fetch it again.
        with self._lock:
            known = [self._delivered[symbol]] if symbol in self._delivered else []
        if newest is not None:
            known.append(datetime_to_ms(newest))
        start = start_after(mark_ms, max(known, default=None), self.interval_ms)
        page = None if start is None else first_page(start, server_ms=server_ms, interval_ms=self.interval_ms)
        while page is not None:
            closed = closed_before(self._fetch(symbol, page), server_ms)
            if not self._hand_over(symbol, closed):
                return
            page = next_page(page, closed, server_ms=server_ms, interval_ms=self.interval_ms)
        self._ensured.add(symbol)

    def _hand_over(self, symbol: str, klines: list[ClosedKline]) -> bool:
        """Deliver ``klines`` to the writer; ``False`` if it is stopping."""
        for kline in klines:
            if not self.deliver(kline):
                return False
            self.stats.fetched += 1
            with self._lock:
                self._delivered[symbol] = max(self._delivered.get(symbol, 0), datetime_to_ms(kline.open_time))
        return True

    def _first_missing(self, symbol: str, first: datetime, last: datetime) -> int | None:
        """The first kline missing from the record before the history ``first``..``last`` (or in it).

        Scans :data:`HOLE_SCAN` intervals back from the newest kline stored before ``first``.
        Returns ``None`` when nothing is stored before it: the record starts with this history.
        """
        before = self.newest_open(symbol, self.interval, before=first)
        if before is None:
            return None
        since = before - timedelta(milliseconds=HOLE_SCAN * self.interval_ms)
        rows = self.stored_times(symbol, self.interval, since, last + timedelta(milliseconds=1))
        stored = [(datetime_to_ms(open_time), stored_at < self.started) for open_time, stored_at in rows]
        holes, missed = classify_gaps(stored, interval_ms=self.interval_ms, last_ms=datetime_to_ms(last))
        for gap in holes:
            logger.warning("backfill: %s has a hole at %s; refetching from there", symbol, ms_to_datetime(gap.first_ms))
        for gap in missed:
            logger.info(
                "backfill: %s: %d klines from %s closed while no ingest stored them; fetching them",
                symbol,
                gap.missing,
                ms_to_datetime(gap.first_ms),
            )
        return min((gap.first_ms for gap in holes + missed), default=None)

    def _fetch(self, symbol: str, page: Page) -> list[ClosedKline]:
        klines, malformed = fetch_page(self.rest, symbol, self.interval, page)
        self.stats.malformed += malformed
        return klines


def fetch_page(rest: BinanceRest, symbol: str, interval: str, page: Page) -> tuple[list[ClosedKline], int]:
    """One ``/fapi/v1/klines`` page (paced by ``rest``): the klines parsed and how many rows were malformed."""
    rows = rest.get("/fapi/v1/klines", page.params(symbol, interval), weight=kline_weight(page.limit))
    if not isinstance(rows, list):
        raise RestError(f"/fapi/v1/klines for {symbol}: expected a list, got {str(rows)[:200]}")
    klines, malformed = [], 0
    for row in rows:
        try:
            klines.append(parse_rest_row(row, symbol=symbol, interval=interval))
        except MalformedMessage as exc:
            malformed += 1
            logger.warning("backfill: skipped malformed REST row for %s: %s", symbol, exc)
    return klines, malformed
