"""``/fapi/v1/klines`` pages for the async view: read and encoded on the mirror's own threads, closed pages
kept as bytes, and one read shared by every request for the same page that arrives while it runs.

The reads run on a pool of their own (not Django's one thread-sensitive
worker, nor the event loop's default executor), so pages are read side by
side and the event loop only hands out bytes: the JSON of 1,500 rows is
encoded on the reading thread too.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from django.db import connection

from klines.api.page_cache import Page, PageCache, PageKey, closed, encode, etag_of
from klines.api.rows import kline_row
from klines.binance.intervals import interval_ms
from klines.binance.parse import datetime_to_ms, ms_to_datetime
from klines.store.reads import klines_page

READ_THREADS = 4  # pages read at once; more only queue behind SecantusDB's one thread and the GIL
CACHE_BYTES = 64 * 1024 * 1024  # closed pages kept; a page of 1,500 one-minute klines is ~200 KB

_reads = ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="klines-api-db")
cache = PageCache(CACHE_BYTES)
_in_flight: dict[PageKey, asyncio.Future[Page]] = {}


def read_page(key: PageKey) -> Page:
    """One page from the store, encoded, with its ETag and whether it is closed (runs on a pool thread)."""
    symbol, interval, start_ms, end_ms, limit = key
    end = ms_to_datetime(end_ms) if end_ms is not None else datetime.now(UTC)
    start = ms_to_datetime(start_ms) if start_ms is not None else None
    try:
        records = klines_page(symbol, interval, start=start, end=end, limit=limit)
    except Exception:
        connection.close()  # this thread's connection: the next read starts afresh
        raise
    body = encode(kline_row(k) for k in records)
    opens = [datetime_to_ms(k.open_time) for k in records]
    is_closed = closed(opens, interval_ms(interval), start_ms=start_ms, end_ms=end_ms, limit=limit)
    return Page(body, etag_of(body), is_closed)


async def page(key: PageKey) -> Page:
    """The page for ``key``: from the cache if closed and kept, else read (once for all who ask meanwhile)."""
    cached = cache.get(key)
    if cached is not None:
        return cached
    future = _in_flight.get(key)
    if future is None:
        future = asyncio.get_running_loop().run_in_executor(_reads, read_page, key)
        _in_flight[key] = future
        future.add_done_callback(lambda done: _finished(key, done))
    # A client that goes away cancels its own wait, not the read the others share.
    return await asyncio.shield(future)


def _finished(key: PageKey, future: asyncio.Future[Page]) -> None:
    _in_flight.pop(key, None)
    if not future.cancelled() and future.exception() is None:
        cache.put(key, future.result())
