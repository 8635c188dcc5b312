"""Encodes the stored history into blocks in the background, while no page is asked for.

Pages build the complete blocks they read (:mod:`klines.api.pages`), but a
record filled by the ingest's backfill, or stored before blocks existed, would
be read kline by kline until every span of it had been asked for once. The
sweep walks each recorded symbol and interval from its newest kline back to its
oldest, reads each span that has no block yet (one indexed read of
:data:`~klines.api.blocks.BLOCK_ROWS` klines) and stores the block if the span
is complete; then it waits :data:`SWEEP_EVERY_SECONDS` and walks again, for the
spans closed since and the holes filled since. It steps aside for pages: a span
is read only once no page has been asked for :data:`IDLE_SECONDS`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from django.db import DatabaseError, connection
from pymongo.errors import PyMongoError

from klines.api.blocks import complete_blocks, encode_row, span_ms
from klines.api.recorded import recorded
from klines.api.rows import kline_row
from klines.binance.intervals import INTERVAL_SECONDS, interval_ms
from klines.binance.parse import datetime_to_ms, ms_to_datetime
from klines.store.blocks import block_starts, save_block
from klines.store.reads import klines_page, newest_open_time

logger = logging.getLogger(__name__)

IDLE_SECONDS = 0.5  # no page asked for this long: a span may be read (one costs ~30 ms of SecantusDB's CPU)
SWEEP_EVERY_SECONDS = 300.0  # a one-minute record closes a block every 500 minutes
RETRY_SECONDS = 30.0  # after a database error

_started = threading.Lock()
_thread: threading.Thread | None = None


def sweep_series(symbol: str, interval: str, wait: Callable[[], None]) -> int:
    """Store every complete block of one symbol and interval that is not stored yet; how many were stored.

    ``wait`` is called before each read of the klines (it returns once pages leave room).
    """
    step = interval_ms(interval)
    span = span_ms(step)
    have = {first // span for first in block_starts(symbol, interval)}
    newest = newest_open_time(symbol, interval)
    number = datetime_to_ms(newest) // span if newest is not None else -1
    stored = 0
    while number >= 0:
        if number in have:
            number -= 1
            continue
        wait()
        records = klines_page(
            symbol, interval, start=ms_to_datetime(number * span), end=ms_to_datetime((number + 1) * span - 1),
            limit=span // step,
        )  # fmt: skip
        if not records:  # no kline in this span: go on from the next older kline, if any
            older = newest_open_time(symbol, interval, before=ms_to_datetime(number * span))
            number = datetime_to_ms(older) // span if older is not None else -1
            continue
        rows = [encode_row(kline_row(k)) for k in records]
        opens = [datetime_to_ms(k.open_time) for k in records]
        stored += sum(save_block(symbol, interval, block) for block in complete_blocks(opens, rows, step))
        number -= 1
    return stored


def sweep(wait: Callable[[], None]) -> int:
    """One walk over every recorded symbol and interval; how many blocks were stored."""
    symbols, intervals = recorded()
    return sum(
        sweep_series(symbol, interval, wait)
        for interval in sorted(intervals & INTERVAL_SECONDS.keys())
        for symbol in sorted(symbols)
    )


def start(idle_for: Callable[[], float]) -> None:
    """Start the sweep once per process; ``idle_for()`` says how long no page has been asked for."""
    global _thread
    with _started:
        if _thread is None:
            _thread = threading.Thread(target=_run, args=(idle_for,), name="klines-block-sweep", daemon=True)
            _thread.start()


def _run(idle_for: Callable[[], float]) -> None:
    def wait() -> None:
        while (idle := idle_for()) < IDLE_SECONDS:
            time.sleep(IDLE_SECONDS - idle)

    try:
        while True:
            began = time.monotonic()
            try:
                stored = sweep(wait)
            except (DatabaseError, PyMongoError) as exc:
                connection.close()
                logger.warning("block sweep: database unavailable (%s); again in %.0f s", exc, RETRY_SECONDS)
                time.sleep(RETRY_SECONDS)
                continue
            if stored:
                logger.info("block sweep: %d blocks stored in %.1f s", stored, time.monotonic() - began)
            time.sleep(SWEEP_EVERY_SECONDS)
    except BaseException:
        # No half-alive process: a sweep that died unexpectedly stops daphne, so the supervisor restarts it.
        logger.critical("block sweep died; stopping the process", exc_info=True)
        logging.shutdown()
        os._exit(1)
