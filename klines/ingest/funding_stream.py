"""Funding rates from the mark-price stream, recorded when their funding time passes.

Each ``markPriceUpdate`` carries the funding rate ``r`` that applies at the next
funding time ``T``. :class:`FundingWatch` (pure) keeps each symbol's latest update;
the first update at or after ``T`` settles it: the funding at ``T`` is the last ``r``
seen before ``T``, with the mark price of that first update (the mark price at ``T``,
within a second on Binance's 1 s stream). Both updates must lie within
:data:`FRESH_MS` of ``T``, or nothing is recorded (a stale rate is not a funding;
REST records it). :class:`MarkPriceIngestor` turns frames into updates, counting
the malformed ones; :class:`StreamedFunding` stores what settled, on its own thread,
marked *from the stream*: the recorder's next REST round confirms or corrects it
(:mod:`klines.ingest.derivatives`; REST wins).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.db import DatabaseError
from pymongo.errors import PyMongoError

from klines.binance.derivatives import Funding
from klines.binance.markprice import MarkPriceUpdate, parse_mark_price_message
from klines.binance.parse import MalformedMessage, ms_to_datetime
from klines.ingest.frames import CappedLog, IngestStats
from klines.store.derivatives import save_streamed_funding

logger = logging.getLogger(__name__)

# How close to T the updates around it must be. Binance sends one a second; the simulator, sped up, one every
# few seconds of its clock. The rate moves little in a minute, and REST corrects it anyway.
FRESH_MS = 60_000
BATCH_WAIT_SECONDS = 0.5


class FundingWatch:
    """Pure: per symbol, the latest update; :meth:`observe` returns the funding an update settles, if any."""

    def __init__(self) -> None:
        self.latest: dict[str, MarkPriceUpdate] = {}
        self.settled: dict[str, int] = {}  # symbol -> the newest funding time settled
        self.stale = 0  # funding times passed with no update within FRESH_MS on either side (left to REST)

    def observe(self, update: MarkPriceUpdate) -> Funding | None:
        before = self.latest.get(update.symbol)
        if before is not None and update.event_ms < before.event_ms:
            return None  # late and out of order: the newer one already stands
        self.latest[update.symbol] = update
        if before is None:
            return None
        due = before.next_funding_ms
        if not (before.event_ms < due <= update.event_ms) or self.settled.get(update.symbol, 0) >= due:
            return None
        self.settled[update.symbol] = due
        if due - before.event_ms > FRESH_MS or update.event_ms - due > FRESH_MS:
            self.stale += 1
            return None
        return Funding(
            symbol=update.symbol,
            funding_time=ms_to_datetime(due),
            funding_rate=before.funding_rate,
            mark_price=update.mark_price,
        )


class MarkPriceIngestor:
    """Parse each mark-price frame of the wanted symbols; hand each settled funding to ``sink``."""

    def __init__(self, *, symbols: Iterable[str], watch: FundingWatch, sink: Callable[[Funding], None]) -> None:
        self.symbols = {s.upper() for s in symbols}
        self.watch = watch  # shared by every mark-price connection: a symbol moves between them on a replan
        self.sink = sink
        self.stats = IngestStats()
        self._warn = CappedLog()

    def handle_message(self, text: str) -> None:
        self.stats.received += 1
        try:
            update = parse_mark_price_message(text)
        except MalformedMessage as exc:
            self.stats.count_malformed(exc)
            self._warn("skipped malformed mark-price message: %s", exc)
            return
        if update.symbol not in self.symbols:
            self.stats.ignored += 1
            self._warn("skipped mark price of unexpected symbol %s", update.symbol)
            return
        if update.event_ms > (self.stats.latest_event_ms or 0):
            self.stats.latest_event_ms = update.event_ms
        funding = self.watch.observe(update)
        if funding is not None:
            self.sink(funding)


@dataclass
class StreamedStats:
    stored: int = 0  # funding rates stored from the stream (not yet known to the store)
    failed: int = 0  # not stored: the database failed (REST records them)


class StreamedFunding:
    """A thread that stores the fundings the stream settled, batched (every symbol settles at once)."""

    def __init__(self, *, stop: threading.Event) -> None:
        self.stop = stop
        self.stats = StreamedStats()
        self._queue: queue.SimpleQueue[Funding] = queue.SimpleQueue()

    def offer(self, funding: Funding) -> None:
        self._queue.put(funding)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                batch = [self._queue.get(timeout=BATCH_WAIT_SECONDS)]
            except queue.Empty:
                continue
            while not self._queue.empty():
                batch.append(self._queue.get())
            self.store(batch)

    def store(self, batch: list[Funding]) -> None:
        try:
            new = save_streamed_funding(batch)
        except (DatabaseError, PyMongoError) as exc:
            self.stats.failed += len(batch)
            logger.warning("funding from the stream: %d not stored (%s); REST records them", len(batch), exc)
            return
        self.stats.stored += new
        if new:
            times = sorted({f.funding_time for f in batch})
            logger.info("funding from the stream: %d rates at %s (REST confirms them)", new, ", ".join(map(str, times)))
