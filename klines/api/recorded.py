"""What the mirror can answer for: the recorded symbols (upper case) and intervals."""

from __future__ import annotations

import time

from klines.serving.settings import serving_settings
from klines.store.exchange import listed_symbols

LISTING_TTL_SECONDS = 30.0  # with KLINE_SYMBOLS=all, how long a read of the stored listing is reused
_listing: tuple[float, frozenset[str]] = (float("-inf"), frozenset())


def recorded() -> tuple[frozenset[str], frozenset[str]]:
    """(symbols, intervals); with ``KLINE_SYMBOLS=all`` the symbols are the exchange's listing the ingest kept."""
    serving = serving_settings()
    intervals = frozenset(serving.intervals)
    if serving.recorded_symbols is not None:
        return frozenset(s.upper() for s in serving.recorded_symbols), intervals
    return _stored_listing(), intervals


def _stored_listing() -> frozenset[str]:
    global _listing
    read_at, symbols = _listing
    if time.monotonic() - read_at > LISTING_TTL_SECONDS:
        symbols = frozenset(listed_symbols())
        _listing = (time.monotonic(), symbols)
    return symbols
