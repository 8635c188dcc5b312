"""The live feed's database reads, on a thread of the feed's own (not Django's one thread-sensitive worker),
so a slow admin page or ``/healthz`` never delays a push."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connection

from klines.serving.metrics import RECONCILE_SECONDS
from klines.store.reads import last_klines, newest_stored_at
from klines.store.records import KlineRecord
from klines.window import HISTORY

_reads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="klines-feed-db")


async def read(function: Callable[..., Any], *args: Any) -> Any:
    """Run a database read on the feed's own thread (not Django's thread-sensitive worker)."""
    with RECONCILE_SECONDS.time():
        return await sync_to_async(_closing_on_error(function), thread_sensitive=False, executor=_reads)(*args)


def _closing_on_error(function: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        try:
            return function(*args)
        except Exception:
            connection.close()  # this thread's connection: the next read starts afresh
            raise

    return call


def read_all(symbols: tuple[str, ...], interval: str) -> tuple[datetime | None, dict[str, list[KlineRecord]]]:
    """The newest ``stored_at`` (read first, so nothing stored meanwhile is missed) and each symbol's klines."""
    return newest_stored_at(), {symbol: last_klines(symbol, interval) for symbol in symbols}


def read_some(symbols: tuple[str, ...], interval: str) -> list[KlineRecord]:
    """The newest :data:`HISTORY` klines of each of ``symbols`` (by open time; one indexed read each)."""
    return [row for symbol in symbols for row in last_klines(symbol, interval, HISTORY)]
