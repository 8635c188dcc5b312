"""The books of the selections on ``/`` (other coins, interval or window): one per interval, deep enough for
the widest window, each (symbol, interval) read once per process on first use."""

from __future__ import annotations

import asyncio
import logging
from zoneinfo import ZoneInfo

from klines.serving.book import PayloadBook
from klines.serving.feed_reads import read
from klines.serving.selection import MAX_WINDOW, Selection
from klines.store.reads import last_klines

logger = logging.getLogger(__name__)


class DeepBooks:
    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self._books: dict[str, PayloadBook] = {}  # interval -> book
        self._loading: dict[tuple[str, str], asyncio.Future] = {}

    def __getitem__(self, interval: str) -> PayloadBook:
        return self._books[interval]

    def get(self, interval: str) -> PayloadBook | None:
        return self._books.get(interval)

    async def prepare(self, selection: Selection) -> None:
        """Read the (symbol, interval) pairs ``selection`` needs and are not held yet (once each, shared)."""
        deep = self._books.setdefault(
            selection.interval, PayloadBook((), self.zone, interval=selection.interval, history=MAX_WINDOW + 1)
        )
        for symbol in selection.symbols:
            key = (symbol, selection.interval)
            loading = self._loading.get(key)
            if loading is None:
                loading = self._loading[key] = asyncio.ensure_future(self._load_pair(deep, symbol))
            try:
                await asyncio.shield(loading)
            except Exception:
                self._loading.pop(key, None)  # the next connection tries again
                raise

    async def _load_pair(self, deep: PayloadBook, symbol: str) -> None:
        deep.ensure(symbol)  # from now on, closes from the layer land in the book too
        rows = await read(last_klines, symbol, deep.interval, MAX_WINDOW + 1)
        deep.replace(symbol, [*rows, *deep.klines(symbol)])
        logger.info("loaded %s %s for a selection on /", symbol, deep.interval)
