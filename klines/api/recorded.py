"""What the mirror can answer for: the recorded symbols (upper case) and intervals.

With ``KLINE_SYMBOLS=all`` the symbols are the stored listing, a database read.
Async code (the API views, the consumers) awaits :func:`refresh_recorded` first,
so :func:`recorded` never queries in the event loop, which Django refuses.
"""

from __future__ import annotations

import time

from asgiref.sync import sync_to_async

from klines.serving.settings import serving_settings
from klines.store.exchange import listed_symbols

LISTING_TTL_SECONDS = 30.0  # with KLINE_SYMBOLS=all, how long a read of the stored listing is reused
REFRESH_AHEAD_SECONDS = 5.0  # refresh_recorded re-reads a listing this close to its age limit
_listing: tuple[float, frozenset[str]] = (float("-inf"), frozenset())


def recorded() -> tuple[frozenset[str], frozenset[str]]:
    """(symbols, intervals); with ``KLINE_SYMBOLS=all`` the symbols are the exchange's listing the ingest kept."""
    serving = serving_settings()
    intervals = frozenset(serving.intervals)
    if serving.recorded_symbols is not None:
        return frozenset(s.upper() for s in serving.recorded_symbols), intervals
    return _stored_listing(), intervals


async def refresh_recorded() -> None:
    """In async code, before :func:`recorded`: a listing near its age limit is re-read on a worker thread."""
    if serving_settings().recorded_symbols is None and _age() > LISTING_TTL_SECONDS - REFRESH_AHEAD_SECONDS:
        await sync_to_async(_read_listing, thread_sensitive=False)()


def _age() -> float:
    return time.monotonic() - _listing[0]


def _stored_listing() -> frozenset[str]:
    return _read_listing() if _age() > LISTING_TTL_SECONDS else _listing[1]


def _read_listing() -> frozenset[str]:
    global _listing
    symbols = frozenset(listed_symbols())
    _listing = (time.monotonic(), symbols)
    return symbols
