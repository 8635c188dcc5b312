"""The serving process's live feed: load payloads once, keep them fresh, fan out.

One :class:`LiveFeed` per process holds the :class:`PayloadBook`. Connections
attach to it and get the current frames from memory. Two background tasks keep
the book fresh:

* a reconciler that asks the database only for klines stored since the last
  look (a cheap indexed query), so a new close shows up within
  ``KLINE_POLL_SECONDS`` even without a shared channel layer;
* a listener on the channel layer group the ingest publishes to, one channel
  per process, so with Redis a close reaches every process at once.

Each changed frame is encoded once and sent to every attached connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.core.signals import setting_changed

from klines.events import GROUP, kline_from_message
from klines.serving.book import PayloadBook
from klines.serving.settings import ServingSettings, serving_settings
from klines.store.reads import klines_stored_since, last_klines, newest_stored_at

logger = logging.getLogger(__name__)

Sender = Callable[[str], Awaitable[None]]
POLL_BATCH = 1000
RETRY_SECONDS = (0.5, 1, 2, 5)
REREAD_MARGIN = timedelta(seconds=2)


class LiveFeed:
    def __init__(self, settings: ServingSettings) -> None:
        self.settings = settings
        self.book = PayloadBook(settings.symbols, ZoneInfo(settings.timezone))
        self.interval = settings.interval
        self.poll_seconds = settings.poll_seconds
        self.loaded = False
        self._clients: dict[object, Sender] = {}
        self._tasks: list[asyncio.Task] = []
        self._stored_since = datetime(1970, 1, 1, tzinfo=UTC)

    def attach(self, client: object, send: Callable[[str], Awaitable[None]]) -> list[str]:
        """Register a connection; return the frames to send it now (none until loaded)."""
        self._ensure_running()
        self._clients[client] = send
        return self.book.frames() if self.loaded else []

    def detach(self, client: object) -> None:
        self._clients.pop(client, None)

    @property
    def client_count(self) -> int:
        return len(self._clients)

    async def publish(self, frames: list[str]) -> None:
        """Send each frame to every attached connection."""
        for send in list(self._clients.values()):
            for frame in frames:
                try:
                    await send(frame)
                except Exception:  # one broken connection must not stop the fan-out
                    logger.exception("sending to a client failed")

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
            try:
                changed = await (self._poll() if self.loaded else self._load())
                failures = 0
            except Exception as exc:
                delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
                failures += 1
                logger.warning("database read failed (%s); serving last good payloads, retry in %ss", exc, delay)
                await asyncio.sleep(delay)
                continue
            if changed:
                await self.publish(changed)
            await asyncio.sleep(self.poll_seconds)

    async def _load(self) -> list[str]:
        newest_stored, loaded = await database_sync_to_async(_read_all)(self.book.symbols, self.interval)
        for symbol, rows in loaded.items():
            self.book.replace(symbol, rows)
        if newest_stored is not None:
            self._stored_since = newest_stored
        self.loaded = True
        logger.info("loaded payloads for %s", ", ".join(self.book.symbols))
        return self.book.frames()

    async def _poll(self) -> list[str]:
        """Apply klines stored since the last look; return the frames that changed."""
        # Re-read a little: a row stamped just before the newest one seen may
        # commit just after it. The book ignores klines it already holds.
        since = self._stored_since - REREAD_MARGIN
        changed: dict[str, str] = {}
        while True:
            rows, read, newest = await database_sync_to_async(klines_stored_since)(
                since, self.interval, self.book.symbols, POLL_BATCH
            )
            for row in rows:
                frame = self.book.add(row.symbol, row)
                if frame is not None:
                    changed[row.symbol] = frame
            if newest is not None:
                self._stored_since = max(self._stored_since, newest)
            if read < POLL_BATCH:
                return list(changed.values())
            if newest is None or newest <= since:  # a full page of one timestamp: reload instead
                return await self._load()
            since = newest

    async def _listen_forever(self) -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        failures = 0
        while True:
            membership = None
            try:
                channel = await layer.new_channel()
                membership = asyncio.create_task(_keep_membership(layer, channel))
                failures = 0
                while True:
                    message = await layer.receive(channel)
                    await self._apply_message(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
                failures += 1
                logger.warning("channel layer unavailable (%s); retry in %ss", exc, delay)
                await asyncio.sleep(delay)
            finally:
                if membership is not None:
                    membership.cancel()

    async def _apply_message(self, message: dict) -> None:
        try:
            kline = kline_from_message(message)
        except (KeyError, TypeError, ValueError) as exc:
            logger.warning("ignored malformed layer message %r: %s", message, exc)
            return
        if kline.interval != self.interval or not self.loaded:
            return
        frame = self.book.add(kline.symbol, kline)
        if frame is not None:
            await self.publish([frame])


async def _keep_membership(layer, channel: str) -> None:
    """Join the group now and again well before the layer's group expiry drops us."""
    refresh = max(60.0, getattr(layer, "group_expiry", 86400) / 4)
    while True:
        try:
            await layer.group_add(GROUP, channel)
        except Exception as exc:  # the receive loop notices a dead layer too
            logger.warning("could not join %s: %s", GROUP, exc)
        await asyncio.sleep(refresh)


def _read_all(symbols: tuple[str, ...], interval: str) -> tuple[datetime | None, dict[str, list]]:
    """The newest ``stored_at`` (read first, so nothing stored meanwhile is missed) and each symbol's klines."""
    return newest_stored_at(), {symbol: last_klines(symbol, interval) for symbol in symbols}


_feed: LiveFeed | None = None


def get_feed() -> LiveFeed:
    """The process-wide feed, created on first use from settings."""
    global _feed
    if _feed is None:
        _feed = LiveFeed(serving_settings())
    return _feed


def reset_feed() -> None:
    """Forget the process-wide feed (tests, and on Django's ``setting_changed`` for ``BINANCEWS``)."""
    global _feed
    if _feed is not None:
        for task in _feed._tasks:
            task.cancel()
    _feed = None


def _reset_on_settings_change(*, setting: str, **_signal: object) -> None:
    if setting == "BINANCEWS":
        reset_feed()


setting_changed.connect(_reset_on_settings_change)
