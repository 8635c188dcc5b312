"""The serving process's live feed: load payloads once, keep them fresh, fan out.

One :class:`LiveFeed` per process holds the :class:`PayloadBook`. Connections
attach to it and get the current frames from memory. Two background tasks keep
the book fresh:

* a reconciler that asks the database only for klines stored since the last
  look (a cheap indexed query), so a new close shows up within
  ``KLINE_POLL_SECONDS`` even without a shared channel layer;
* a listener on the channel layer group the ingest publishes to, one channel
  per process, so with Redis a close reaches every process at once.

Each changed frame is encoded once; the fan-out marks the coin in every
attached connection's :class:`~klines.serving.outbox.Outbox`, whose own task
sends the book's current frame (or the outbox itself, at once, where the server
can: :mod:`klines.serving.immediate`), so the fan-out never waits for a client.

A selection on ``/`` (other coins, interval or window) has its books in
:mod:`~klines.serving.deep_books`, kept fresh the same way. Every stored close
the feed learns of, of any symbol and interval, and the in-progress updates the
ingest relays, also go to the process's
:class:`~klines.serving.streams.StreamHub` (the Binance-protocol streams).
The reconciler's reads run on a thread of their own (:mod:`~klines.serving.feed_reads`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from django.core.signals import setting_changed

from klines.binance.parse import ClosedKline
from klines.events import (
    GROUP,
    UPDATES_GROUP,
    UPDATES_TYPE,
    kline_from_message,
    message_started,
    superseded,
    updates_from_message,
)
from klines.serving.book import PayloadBook
from klines.serving.deep_books import DeepBooks
from klines.serving.delivery import CLOSE, UPDATE, Delivery
from klines.serving.feed_reads import read, read_all, read_some
from klines.serving.layer import RETRY_SECONDS, listen
from klines.serving.metrics import DATABASE_UP, LAYER_MESSAGES, ROOT, STREAMS, count_connections_with
from klines.serving.outbox import Outbox
from klines.serving.selection import Selection
from klines.serving.sender import Sender
from klines.serving.settings import ServingSettings, serving_settings
from klines.serving.streams import StreamHub, Subscriber
from klines.store.reads import klines_stored_since
from klines.store.records import KlineRecord
from klines.window import WINDOW

logger = logging.getLogger(__name__)

POLL_BATCH = 1000
# ``stored_at`` is the writer's clock. Each poll re-reads what was stored since
# REREAD_MARGIN before the newest ``stored_at`` seen, so a row that commits late,
# or comes from a writer whose clock is up to REREAD_MARGIN off the others', is
# still read (the book ignores klines it holds). Measured on SecantusDB at 500
# symbols of 1m klines: ~80 rows, ~15 ms a poll.
REREAD_MARGIN = timedelta(seconds=10)
# For clocks further off, each poll also re-reads, by open time (the exchange's
# clock, one indexed read per symbol), the newest klines of this many symbols in
# turn: every poll at 5 symbols, each symbol every 100 polls at 500. Measured:
# 10-20 ms a poll for 5 symbols.
SWEEP_SYMBOLS_PER_POLL = 5

GROUPS = (GROUP, UPDATES_GROUP)


@dataclass(eq=False)
class _Attached:
    outbox: Outbox
    book: PayloadBook
    symbols: frozenset[str] | None  # None: all of the book's (the default ``/``)
    window: int


class LiveFeed:
    def __init__(self, settings: ServingSettings) -> None:
        self.settings = settings
        self.zone = ZoneInfo(settings.timezone)
        self.book = PayloadBook(settings.symbols, self.zone, interval=settings.interval)
        self.interval = settings.interval
        self.poll_seconds = settings.poll_seconds
        self.loaded = False
        self.hub = StreamHub()
        self.default_selection = Selection(symbols=self.book.symbols, interval=self.interval, window=WINDOW)
        self._deep = DeepBooks(self.zone)  # interval -> the selections' book
        self._clients: dict[object, _Attached] = {}
        self._tasks: list[asyncio.Task] = []
        self._stored_since = datetime(1970, 1, 1, tzinfo=UTC)
        self._sweep_next = 0
        # Closes stored up to the first load are history, not events: the hub gets only later ones.
        self._streams_since: datetime | None = None

    def attach(
        self,
        client: object,
        send: Sender,
        *,
        too_slow: Callable[[int], Awaitable[None]],
        buffered: Callable[[], int | None] = lambda: None,
        send_now: Callable[[str], None] | None = None,
        selection: Selection | None = None,
    ) -> Outbox:
        """Register a connection; its outbox sends it every coin's frame now (once loaded), then each change.

        A ``selection`` other than the default must be passed to :meth:`prepare` first.
        """
        self._ensure_running()
        book, symbols, window = self.book, None, WINDOW
        if selection is not None and selection != self.default_selection:
            book, window = self._book_for(selection), selection.window
            symbols = frozenset(selection.symbols)
        outbox = Outbox(
            book.frame if window == WINDOW else (lambda symbol: book.frame(symbol, window)),
            book.newest_open_time,
            send,
            max_owed=self.settings.ws_max_pending_bytes,
            too_slow=too_slow,
            buffered=buffered,
            send_now=send_now,
        )
        self._clients[client] = _Attached(outbox, book, symbols, window)
        if book is not self.book or self.loaded:
            outbox.offer(selection.symbols if symbols is not None else book.symbols)
        outbox.start()
        return outbox

    def _book_for(self, selection: Selection) -> PayloadBook:
        """The default book if it holds what ``selection`` shows; else the interval's deeper book."""
        return self.book if self._shown_by_default_book(selection) else self._deep[selection.interval]

    def _shown_by_default_book(self, selection: Selection) -> bool:
        return (
            self.loaded
            and selection.interval == self.interval
            and selection.window <= WINDOW
            and all(self.book.holds(s) for s in selection.symbols)
        )

    async def prepare(self, selection: Selection) -> None:
        """Read the (symbol, interval) pairs ``selection`` needs and this process does not hold yet (once each)."""
        self._ensure_running()
        if selection == self.default_selection or self._shown_by_default_book(selection):
            return
        await self._deep.prepare(selection)

    def attach_stream(self, client: Subscriber, streams: list[str]) -> None:
        """Register a Binance-protocol stream connection with the hub (the feed's tasks bring it events)."""
        self._ensure_running()
        self.hub.attach(client)
        self.hub.subscribe(client, streams)

    def detach_stream(self, client: Subscriber) -> None:
        if client.queue is not None:
            client.queue.stop()
        self.hub.detach(client)

    def detach(self, client: object) -> None:
        attached = self._clients.pop(client, None)
        if attached is not None:
            attached.outbox.stop()

    def connections(self) -> dict[str, int]:
        """Connections of this process by endpoint (the metrics' label)."""
        return {ROOT: len(self._clients), STREAMS: self.hub.client_count}

    @property
    def client_count(self) -> int:
        """Connections of this process: on ``/`` and on the Binance-protocol streams."""
        return len(self._clients) + self.hub.client_count

    def publish(self, symbols: list[str], book: PayloadBook | None = None, delivery: Delivery | None = None) -> None:
        """Tell every connection shown these coins of ``book`` (default: the default book) that they changed."""
        if not symbols:
            return
        book = book or self.book
        for attached in list(self._clients.values()):
            if attached.book is not book:
                continue
            if attached.symbols is None:
                shown = symbols
            else:
                shown = [s for s in symbols if s in attached.symbols]
                if not shown:
                    continue
            attached.outbox.offer(shown, delivery)

    def _ensure_running(self) -> None:
        if self._tasks and not all(t.done() for t in self._tasks):
            return
        self._tasks = [
            asyncio.create_task(self._reconcile_forever(), name="klines-reconcile"),
            asyncio.create_task(self._listen_forever(), name="klines-listen"),
        ]

    async def _reconcile_forever(self) -> None:
        failures = 0
        while True:
            delivery = Delivery(CLOSE)  # times the closes this look finds
            try:
                changed = await (self._poll(delivery) if self.loaded else self._load())
                failures = 0
                DATABASE_UP.set(1)
            except Exception as exc:
                delivery.seal()
                DATABASE_UP.set(0)
                delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
                failures += 1
                logger.warning("database read failed (%s); serving last good payloads, retry in %ss", exc, delay)
                await asyncio.sleep(delay)
                continue
            self.publish(changed, delivery=delivery)
            delivery.seal()
            await asyncio.sleep(self.poll_seconds)

    async def _load(self) -> list[str]:
        newest_stored, loaded = await read(read_all, self.book.symbols, self.interval)
        for symbol, rows in loaded.items():
            if self.loaded:  # a reload: a layer message may have brought newer klines meanwhile
                for row in rows:
                    self.book.add(symbol, row)
            else:
                self.book.replace(symbol, rows)
        if newest_stored is not None:
            self._stored_since = newest_stored
            if self._streams_since is None:
                self._streams_since = newest_stored
        self.loaded = True
        logger.info("loaded payloads for %s", ", ".join(self.book.symbols))
        return list(self.book.symbols)

    async def _poll(self, delivery: Delivery) -> list[str]:
        """Apply klines stored since the last look, and re-read a few symbols; return the coins that changed."""
        since = self._stored_since - REREAD_MARGIN
        changed: dict[str, None] = {}
        closes: dict[tuple[str, str], KlineRecord] = {}
        while True:
            rows, read_count, newest = await read(klines_stored_since, since, None, None, POLL_BATCH)
            self._apply(rows, changed, delivery, closes, to_streams=True)
            if newest is not None:
                self._stored_since = max(self._stored_since, newest)
            if read_count < POLL_BATCH:
                break
            if newest is None or newest <= since:  # a full page of one timestamp: reload instead
                self._to_hub(closes, delivery)
                return await self._load()
            since = newest
        swept = self._next_sweep()
        self._apply(await read(read_some, swept, self.interval), changed, delivery, closes)
        self._to_hub(closes, delivery)
        return list(changed)

    def _apply(
        self,
        rows: list,
        changed: dict[str, None],
        delivery: Delivery,
        closes: dict[tuple[str, str], KlineRecord],
        *,
        to_streams: bool = False,
    ) -> None:
        """Rows of any symbol and interval, oldest stored first: to the books they belong in; the newest of
        each stream to ``closes``, for the hub (:meth:`_to_hub`).

        The sweep's rows go to the hub only if they are new to the default book. ``delivery`` times
        the fan-out from the oldest ``stored_at`` among the rows that are news.
        """
        deep_changed: dict[str, dict[str, None]] = {}
        since = self._streams_since
        for row in rows:
            news = fresh = row.interval == self.interval and self.book.add(row.symbol, row) is not None
            if fresh:
                changed[row.symbol] = None
            deep = self._deep.get(row.interval)
            if deep is not None and deep.add(row.symbol, row) is not None:
                deep_changed.setdefault(row.interval, {})[row.symbol] = None
                news = True
            if (fresh or to_streams) and (since is None or row.stored_at > since):
                held = closes.get(key := (row.symbol, row.interval))
                if held is None or row.open_time > held.open_time:
                    closes[key] = row
            if news:
                delivery.since(row.stored_at.timestamp())
        for interval, symbols in deep_changed.items():
            self.publish(list(symbols), self._deep[interval], delivery)

    def _to_hub(self, closes: dict[tuple[str, str], KlineRecord], delivery: Delivery) -> None:
        """The newest close of each stream one look found: a close as it happens, or a catch-up's newest.

        Older closes of a stream found by the same look (a backfill stored at once) are history.
        """
        for row in closes.values():
            if self.hub.closed(row, delivery):
                delivery.since(row.stored_at.timestamp())
        closes.clear()

    def _next_sweep(self) -> tuple[str, ...]:
        symbols = self.book.symbols
        count = min(SWEEP_SYMBOLS_PER_POLL, len(symbols))
        start = self._sweep_next % len(symbols)
        self._sweep_next = start + count
        return tuple(symbols[(start + i) % len(symbols)] for i in range(count))

    async def _listen_forever(self) -> None:
        await listen(GROUPS, self._apply_message)

    async def _apply_message(self, message: dict) -> None:
        LAYER_MESSAGES.inc()
        updates = message.get("type") == UPDATES_TYPE
        try:
            events = updates_from_message(message) if updates else []
            kline = None if updates else kline_from_message(message)
        except (KeyError, TypeError, ValueError) as exc:
            logger.warning("ignored malformed layer message %.200r: %s", message, exc)
            return
        delivery = Delivery(UPDATE if updates else CLOSE, message_started(message))
        try:
            if kline is None:
                self.hub.updates(events, delivery)
            else:
                self._closed(kline, delivery, live=not superseded(message))
        finally:
            delivery.seal()

    def _closed(self, kline: ClosedKline, delivery: Delivery, *, live: bool = True) -> None:
        """A close from the layer: to the hub (sent on streams if ``live``), the deep book of its interval
        and the default book."""
        self.hub.closed(kline, delivery, live=live)
        deep = self._deep.get(kline.interval)
        if deep is not None and deep.add(kline.symbol, kline) is not None:
            self.publish([kline.symbol.upper()], deep, delivery)
        if kline.interval != self.interval or not self.loaded:
            return
        if self.book.add(kline.symbol, kline) is not None:
            self.publish([kline.symbol.upper()], delivery=delivery)


_feed: LiveFeed | None = None


def get_feed() -> LiveFeed:
    """The process-wide feed, created on first use from settings."""
    global _feed
    if _feed is None:
        _feed = LiveFeed(serving_settings())
    return _feed


def current_feed() -> LiveFeed | None:
    """The process-wide feed if one was created (metrics must not create it)."""
    return _feed


def _connections_now() -> dict[str, int]:
    """The metrics' connected clients: the process-wide feed's, without creating it."""
    return _feed.connections() if _feed is not None else {ROOT: 0, STREAMS: 0}


count_connections_with(_connections_now)


def reset_feed() -> None:
    """Forget the process-wide feed (tests, and on Django's ``setting_changed`` for ``BINANCEWS``)."""
    global _feed
    if _feed is not None:
        for task in _feed._tasks:
            task.cancel()
        for client in list(_feed._clients):
            _feed.detach(client)
        _feed.hub.stop_all()
    _feed = None


def _reset_on_settings_change(*, setting: str, **_signal: object) -> None:
    if setting == "BINANCEWS":
        reset_feed()


setting_changed.connect(_reset_on_settings_change)
