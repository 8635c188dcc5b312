"""Record mark-price klines and funding rates from REST, after each close, for the recorded symbols.

One thread (:class:`DerivativesRecorder`): after each close of the shortest
interval (by the exchange's clock) it asks ``/fapi/v1/markPriceKlines`` for the
closed mark-price klines after the newest stored, and ``/fapi/v1/fundingRate``
for the fundings settled after the newest stored, through the ingest's paced
REST client; funding once an hour, a minute after the hour (Binance settles
on the hour). The mark-price stream records each funding at its time
(:mod:`klines.ingest.funding_stream`); this round then confirms it from REST, or
stores REST's values over it (REST wins; the difference is logged and counted).

The record starts where the symbol's kline record starts (at the
same interval, or its oldest kline at any), and holds at least the newest
:data:`HISTORY` mark-price klines and the last funding: when the klines reach
further back (``backfill_klines`` ran), the range before the oldest stored is
fetched too, once per process. A failed round is retried with backoff.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime

from django.db import DatabaseError
from pymongo.errors import PyMongoError

from klines.backoff import Backoff
from klines.binance.derivatives import (
    FUNDING_MAX_LIMIT,
    FUNDING_WEIGHT,
    Funding,
    MarkKline,
    parse_funding,
    parse_mark_row,
)
from klines.binance.intervals import interval_ms
from klines.binance.parse import MalformedMessage, datetime_to_ms, ms_to_datetime
from klines.binance.rest import BinanceRest, RestError
from klines.ingest.backfill import PAGE_LIMIT, kline_weight
from klines.ingest.periodic import IDLE_WAIT_SECONDS
from klines.store.derivatives import (
    Span,
    funding_span,
    mark_span,
    reconcile_funding,
    save_funding,
    save_mark_klines,
    unconfirmed_funding,
)
from klines.store.reads import oldest_open_time
from klines.window import HISTORY

logger = logging.getLogger(__name__)

RETRY = Backoff(initial=1.0, maximum=30.0)
SETTLE_SECONDS = 1.0  # after a close, before asking: the exchange has it by then
HOUR_MS = 3_600_000
# Binance settles funding on the hour (every 1, 4 or 8 h): asked once an hour, this long after it.
FUNDING_DELAY_MS = 60_000
FUNDING_LOOKBACK_MS = 8 * HOUR_MS  # at least the last funding


def next_close_delay(server_ms: int, step_ms: int, speed: float = 1.0) -> float:
    """Wall seconds until the next multiple of ``step_ms`` on the exchange's clock, plus :data:`SETTLE_SECONDS`."""
    return (step_ms - server_ms % step_ms) / 1000 / speed + SETTLE_SECONDS


def fetch_mark_klines(
    rest: BinanceRest, symbol: str, interval: str, start_ms: int, end_ms: int, *, server_ms: int
) -> list[MarkKline]:
    """The closed mark-price klines opened in ``[start_ms, end_ms]``, page by page."""
    step = interval_ms(interval)
    found: list[MarkKline] = []
    while start_ms <= end_ms:
        limit = min(PAGE_LIMIT, (end_ms - start_ms) // step + 1)  # after one close: 1, weight 1
        params = {"symbol": symbol, "interval": interval, "startTime": start_ms, "endTime": end_ms, "limit": limit}
        rows = rest.get("/fapi/v1/markPriceKlines", params, weight=kline_weight(limit))
        if not isinstance(rows, list):
            raise RestError(f"unexpected /fapi/v1/markPriceKlines answer: {str(rows)[:200]}")
        page = [parse_mark_row(row, symbol=symbol, interval=interval) for row in rows]
        found += [k for k in page if datetime_to_ms(k.close_time) < server_ms]
        if len(page) < limit:
            break
        start_ms = datetime_to_ms(page[-1].open_time) + step
    return found


def fetch_funding(rest: BinanceRest, symbol: str, start_ms: int, end_ms: int) -> list[Funding]:
    """The fundings of ``symbol`` settled in ``[start_ms, end_ms]``, page by page."""
    found: list[Funding] = []
    while start_ms <= end_ms:
        params = {"symbol": symbol, "startTime": start_ms, "endTime": end_ms, "limit": FUNDING_MAX_LIMIT}
        items = rest.get("/fapi/v1/fundingRate", params, weight=FUNDING_WEIGHT)
        if not isinstance(items, list):
            raise RestError(f"unexpected /fapi/v1/fundingRate answer: {str(items)[:200]}")
        page = [parse_funding(item) for item in items]
        found += page
        if len(page) < FUNDING_MAX_LIMIT:
            break
        start_ms = datetime_to_ms(page[-1].funding_time) + 1
    return found


class DerivativesRecorder:
    def __init__(
        self,
        *,
        rest: BinanceRest,
        symbols: Callable[[], Sequence[str]],
        kline_intervals: Sequence[str],
        mark_intervals: Sequence[str],
        stop: threading.Event,
        klines_idle: Callable[[], bool] = lambda: True,
    ) -> None:
        """``klines_idle()``: no kline backfill, history or write waiting; each round waits for it, so the klines
        (what the live service serves) have the request weight first: at 1,000 symbols a round costs 2,000."""
        self.rest = rest
        self.symbols = symbols
        self.klines_idle = klines_idle
        self.kline_intervals = tuple(kline_intervals)
        self.mark_intervals = tuple(mark_intervals)
        self.stop = stop
        self.step_ms = min(interval_ms(i) for i in self.mark_intervals)
        self.stored = 0  # mark-price klines and funding rates newly stored since start
        self.confirmed = 0  # funding rates from the stream REST confirmed as they were
        # Funding rates from the stream REST corrected, by what differed: "rate" (the rate, maybe the mark price
        # too), "mark_price" (only it: the stream's is the first update at T, REST's Binance's own), "removed".
        self.corrected: Counter[str] = Counter()
        self.busy = True  # in a round, or before the first (the hole repair waits: what is half-stored is no hole)
        self._funding_asked: dict[str, int] = {}  # symbol -> the hour (since the epoch) last asked in
        self._tried_before: dict[object, tuple[int, int]] = {}  # the range before the oldest stored, fetched once
        # What the last round read of each record, so that the next reads only past its ends (records only grow
        # at their ends; a hole inside is the repair's): the klines' oldest, the mark-price klines' span.
        self._kline_oldest: dict[tuple[str, str], datetime] = {}
        self._mark_spans: dict[tuple[str, str], Span] = {}

    def run(self) -> None:
        attempt = 0
        while not self.stop.is_set():
            self.busy = True
            while not (self.klines_idle() or self.stop.wait(IDLE_WAIT_SECONDS)):
                pass
            try:
                server_ms = self.rest.server_time_ms()
                before = self.stored
                self.catch_up(server_ms)
                if self.stored > before:
                    logger.info(
                        "mark price and funding: %d new mark-price klines and funding rates", self.stored - before
                    )
                attempt, wait = 0, next_close_delay(self.rest.exchange_now_ms(), self.step_ms)
            except RestError as exc:
                if self.stop.is_set():
                    return
                wait, attempt = RETRY.delay(attempt), attempt + 1
                logger.warning("mark price and funding: REST failed (%s); retrying in %.1fs", exc, wait)
            except (DatabaseError, PyMongoError, MalformedMessage) as exc:
                wait, attempt = RETRY.delay(attempt), attempt + 1
                logger.warning("mark price and funding: %s: %s; retrying in %.1fs", type(exc).__name__, exc, wait)
            self.busy = False
            if self.stop.wait(wait):
                return

    def catch_up(self, server_ms: int) -> None:
        """Fetch and store what is missing at either end of each symbol's record (see the module)."""
        for symbol in self.symbols():
            oldest = {i: self._oldest_kline(symbol, i) for i in self.kline_intervals}
            known = [datetime_to_ms(t) for t in oldest.values() if t is not None]
            since = min(known) if known else None
            for interval in self.mark_intervals:
                step = interval_ms(interval)
                at_interval = oldest.get(interval)
                start = datetime_to_ms(at_interval) if at_interval is not None else since
                start = min(server_ms - HISTORY * step, start if start is not None else server_ms)
                span = mark_span(symbol, interval, known=self._mark_spans.get((symbol, interval)))
                if span is not None:
                    self._mark_spans[symbol, interval] = span
                self.stored += self._fill(
                    (symbol, interval),
                    span,
                    start - start % step,
                    server_ms - step,
                    step,
                    functools.partial(fetch_mark_klines, self.rest, symbol, interval, server_ms=server_ms),
                    save_mark_klines,
                )
            # Newer fundings: asked once an hour (the range before the oldest whenever the klines reach further).
            due = (server_ms - FUNDING_DELAY_MS) // HOUR_MS
            start = min(server_ms - FUNDING_LOOKBACK_MS, since if since is not None else server_ms)
            if self._funding_asked.get(symbol, -1) < due:
                self.stored += self._funding_ahead(symbol, start, server_ms)
            self.stored += self._fill(
                symbol,
                funding_span(symbol),
                start,
                server_ms,
                1,
                functools.partial(fetch_funding, self.rest, symbol),
                save_funding,
                ahead=False,
            )
            self._funding_asked[symbol] = due

    def _oldest_kline(self, symbol: str, interval: str) -> datetime | None:
        """The oldest stored kline's open time; after the first read, only what was stored before it is read."""
        known = self._kline_oldest.get((symbol, interval))
        oldest = oldest_open_time(symbol, interval, before=known) or known
        if oldest is not None:
            self._kline_oldest[symbol, interval] = oldest
        return oldest

    def _funding_ahead(self, symbol: str, start_ms: int, server_ms: int) -> int:
        """Fetch the fundings after the newest stored, or from the oldest the stream recorded and REST has not
        confirmed yet: REST's values are stored over the stream's (a difference is logged and counted)."""
        span = funding_span(symbol)
        unconfirmed = unconfirmed_funding(symbol)
        first = start_ms if span is None else datetime_to_ms(span[1]) + 1
        if unconfirmed:
            first = min(first, datetime_to_ms(unconfirmed[0].funding_time))
        if first > server_ms:
            return 0
        fetched = fetch_funding(self.rest, symbol, first, server_ms)
        result = reconcile_funding(fetched, unconfirmed, settled_before=ms_to_datetime(server_ms - FUNDING_DELAY_MS))
        for stream, rest in result.corrected:
            rate = str(stream.funding_rate) != str(rest.funding_rate)
            self.corrected["rate" if rate else "mark_price"] += 1
            logger.log(
                logging.WARNING if rate else logging.INFO,
                "funding %s at %s: the stream had rate %s, mark price %s; REST has %s, %s (stored)",
                symbol,
                rest.funding_time,
                stream.funding_rate,
                stream.mark_price,
                rest.funding_rate,
                rest.mark_price,
            )
        for stream in result.removed:
            logger.warning(
                "funding %s at %s: recorded from the stream, but REST has no such funding; removed",
                symbol,
                stream.funding_time,
            )
        self.confirmed += result.confirmed
        if result.removed:
            self.corrected["removed"] += len(result.removed)
        return result.new

    def _fill(
        self,
        key: object,
        span: tuple[datetime, datetime] | None,
        start_ms: int,
        end_ms: int,
        step_ms: int,
        fetch: Callable[[int, int], list],
        save: Callable[[list], int],
        *,
        ahead: bool = True,
    ) -> int:
        """Fetch ``[start_ms, end_ms]`` less the stored ``span``: before its oldest (once), after its newest
        (if ``ahead``)."""
        if span is None:
            return save(fetch(start_ms, end_ms)) if start_ms <= end_ms else 0
        oldest, newest = datetime_to_ms(span[0]), datetime_to_ms(span[1])
        stored = save(fetch(newest + step_ms, end_ms)) if ahead and newest + step_ms <= end_ms else 0
        tried = self._tried_before.get(key)  # (from, to) fetched before: the exchange had nothing older
        if start_ms <= oldest - step_ms and not (tried and tried[0] <= start_ms and tried[1] == oldest):
            stored += save(fetch(start_ms, oldest - step_ms))
            self._tried_before[key] = (start_ms, oldest)
        return stored
