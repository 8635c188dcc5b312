"""``/fapi/v1/klines`` pages for the async view: read and encoded on the mirror's own threads, closed pages
kept as bytes, and one read shared by every request for the same page that arrives while it runs.

A page is cut from the encoded blocks of closed klines (:mod:`klines.api.blocks`)
when they hold all of it; otherwise it is read from the klines, and the
complete blocks among them are stored for the next page.

The reads run on a pool of their own (not Django's one thread-sensitive
worker, nor the event loop's default executor), so pages are read side by
side and the event loop only hands out bytes: the JSON of 1,500 rows is
encoded on the reading thread too.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from django.db import connection

from klines.api import block_sweep
from klines.api.blocks import complete_blocks, encode_row, join_rows, page_from_blocks, span_ms
from klines.api.page_cache import Page, PageCache, PageKey, closed, etag_of
from klines.api.rows import kline_row
from klines.binance.intervals import interval_ms
from klines.binance.parse import datetime_to_ms, ms_to_datetime
from klines.serving.settings import serving_settings
from klines.store.blocks import blocks_between, save_block
from klines.store.reads import klines_page

READ_THREADS = 4  # pages read at once; more only queue behind SecantusDB's one thread and the GIL
CACHE_BYTES = 64 * 1024 * 1024  # closed pages kept; a page of 1,500 one-minute klines is ~200 KB

_reads = ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="klines-api-db")
cache = PageCache(CACHE_BYTES)
_in_flight: dict[PageKey, asyncio.Future[Page]] = {}
_asking = 0  # page requests being answered (the block sweep waits for none)
_last_asked = float("-inf")  # time.monotonic() when the last one ended


def read_page(key: PageKey) -> Page:
    """One page from the store, encoded, with its ETag and whether it is closed (runs on a pool thread)."""
    symbol, interval, start_ms, end_ms, limit = key
    step = interval_ms(interval)
    end = end_ms if end_ms is not None else datetime_to_ms(datetime.now(UTC))
    try:
        if serving_settings().blocks:
            body, opens = _from_blocks_or_klines(symbol, interval, step, start_ms, end, limit)
        else:
            body, opens = _from_klines(symbol, interval, step, start_ms, end, limit, None)
    except Exception:
        connection.close()  # this thread's connection: the next read starts afresh
        raise
    is_closed = closed(opens, step, start_ms=start_ms, end_ms=end_ms, limit=limit)
    return Page(body, etag_of(body), is_closed)


def _from_blocks_or_klines(
    symbol: str, interval: str, step: int, start_ms: int | None, end_ms: int, limit: int
) -> tuple[bytes, list[int]]:
    """(body, open times): cut from the blocks if they hold the page, else read from the klines."""
    low = start_ms if start_ms is not None else end_ms - limit * step
    high = min(end_ms, start_ms + (limit - 1) * step) if start_ms is not None else end_ms
    blocks = blocks_between(symbol, interval, low - span_ms(step), high)
    found = page_from_blocks(blocks, step, start_ms=start_ms, end_ms=end_ms, limit=limit)
    if found is not None:
        return found
    return _from_klines(symbol, interval, step, start_ms, end_ms, limit, {b.first_open_ms for b in blocks})


def _from_klines(
    symbol: str, interval: str, step: int, start_ms: int | None, end_ms: int, limit: int, have: set[int] | None
) -> tuple[bytes, list[int]]:
    """(body, open times) read from the klines; the complete blocks among them not in ``have`` are stored
    (``None``: none is)."""
    start = ms_to_datetime(start_ms) if start_ms is not None else None
    records = klines_page(symbol, interval, start=start, end=ms_to_datetime(end_ms), limit=limit)
    rows = [encode_row(kline_row(k)) for k in records]
    opens = [datetime_to_ms(k.open_time) for k in records]
    if have is not None:
        for block in complete_blocks(opens, rows, step):
            if block.first_open_ms not in have:
                save_block(symbol, interval, block)
    return join_rows(rows), opens


def idle_for() -> float:
    """Seconds since the last page request ended; 0 while one is being answered."""
    return 0.0 if _asking else time.monotonic() - _last_asked


async def page(key: PageKey) -> Page:
    """The page for ``key``: from the cache if closed and kept, else read (once for all who ask meanwhile)."""
    global _asking, _last_asked
    if serving_settings().blocks:
        block_sweep.start(idle_for)
    _asking += 1
    try:
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
    finally:
        _asking -= 1
        _last_asked = time.monotonic()


def _finished(key: PageKey, future: asyncio.Future[Page]) -> None:
    _in_flight.pop(key, None)
    if not future.cancelled() and future.exception() is None:
        cache.put(key, future.result())
