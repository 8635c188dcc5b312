"""Pure formatting of the ingest's periodic stats line."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from klines.binance.intervals import interval_ms
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
    malformed_kinds: Mapping[str, int] = field(default_factory=dict)  # offending part -> frames
    rejected: int = 0  # klines the database refused
    pongs_skipped: int = 0
    rate_limited: int = 0  # REST 429/418 answers waited out
    funding_streamed: int = 0  # funding rates recorded from the mark-price stream
    funding_corrected: Mapping[str, int] = field(default_factory=dict)  # of those, REST corrected: what differed
    derivatives_repaired: int = 0  # mark-price klines and funding rates stored for holes


def lag_seconds(
    newest_open: Mapping[tuple[str, str], datetime], streams: Sequence[tuple[str, str]], *, now_ms: int
) -> dict[str, float | None]:
    """Per (symbol, interval), seconds between the close of its newest stored kline and ``now_ms``
    (``None``: nothing stored). Labelled by symbol, or ``SYMBOL interval`` when several intervals are recorded."""
    several = len({interval for _, interval in streams}) > 1
    lags: dict[str, float | None] = {}
    for symbol, interval in streams:
        newest = newest_open.get((symbol.upper(), interval))
        label = f"{symbol.upper()} {interval}" if several else symbol.upper()
        lags[label] = None if newest is None else (now_ms - datetime_to_ms(newest) - interval_ms(interval)) / 1000
    return lags


def format_stats(counters: Counters, lags: Mapping[str, float | None]) -> str:
    """One line: totals since start, then the lag of the newest stored kline per symbol."""
    c = counters
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(c.malformed_kinds.items(), key=lambda item: -item[1]))
    line = (
        f"stats: {c.messages} messages, {c.stored} klines stored, {c.backfilled} fetched from REST, "
        f"{c.duplicates} duplicates skipped, {c.malformed} malformed{f' ({kinds})' if kinds else ''}, "
        f"{c.unknown} unknown streams, {c.reconnects} reconnects, {c.dropped} dropped, {c.queued} queued, "
        f"{c.rejected} rejected, {c.pongs_skipped} pongs skipped, {c.rate_limited} rate limits waited out"
    )
    shown = list(lags.items())
    label = "lag"
    if len(shown) > LAGS_LISTED:
        # Unknown lag (nothing stored) first, then the largest.
        shown = sorted(shown, key=lambda item: (item[1] is not None, -(item[1] or 0.0)))[:LAGS_LISTED]
        label = f"lag (worst {LAGS_LISTED} of {len(lags)})"
    return f"{line}; {label}" + "".join(f" {symbol} {'-' if lag is None else f'{lag:.1f}s'}" for symbol, lag in shown)
