"""Pure formatting of the ingest's periodic stats line."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from klines.binance.parse import datetime_to_ms

LAGS_LISTED = 20  # with more symbols, list the worst ones


@dataclass(frozen=True, kw_only=True)
class Counters:
    messages: int = 0
    stored: int = 0
    duplicates: int = 0
    malformed: int = 0
    unknown: int = 0
    reconnects: int = 0
    dropped: int = 0
    queued: int = 0
    backfilled: int = 0


def lag_seconds(
    newest_open: Mapping[str, datetime], symbols: Sequence[str], *, interval_ms: int, now_ms: int
) -> dict[str, float | None]:
    """Per symbol, seconds between the close of its newest stored kline and ``now_ms`` (``None``: nothing stored)."""
    lags: dict[str, float | None] = {}
    for symbol in symbols:
        newest = newest_open.get(symbol.upper())
        lags[symbol.upper()] = None if newest is None else (now_ms - datetime_to_ms(newest) - interval_ms) / 1000
    return lags


def format_stats(counters: Counters, lags: Mapping[str, float | None]) -> str:
    """One line: totals since start, then the lag of the newest stored kline per symbol."""
    c = counters
    line = (
        f"stats: {c.messages} messages, {c.stored} klines stored, {c.backfilled} fetched from REST, "
        f"{c.duplicates} duplicates skipped, {c.malformed} malformed, {c.unknown} unknown streams, "
        f"{c.reconnects} reconnects, {c.dropped} dropped, {c.queued} queued"
    )
    shown = list(lags.items())
    label = "lag"
    if len(shown) > LAGS_LISTED:
        # Unknown lag (nothing stored) first, then the largest.
        shown = sorted(shown, key=lambda item: (item[1] is not None, -(item[1] or 0.0)))[:LAGS_LISTED]
        label = f"lag (worst {LAGS_LISTED} of {len(lags)})"
    return f"{line}; {label}" + "".join(f" {symbol} {'-' if lag is None else f'{lag:.1f}s'}" for symbol, lag in shown)
