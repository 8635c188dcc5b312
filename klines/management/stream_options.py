"""The ``--symbols`` / ``--interval`` options the kline commands share."""

from __future__ import annotations

from argparse import ArgumentParser

from django.conf import settings
from django.core.management.base import CommandError

from klines.binance.names import parse_intervals, parse_symbols


def add_stream_options(parser: ArgumentParser) -> None:
    parser.add_argument("--symbols", help="comma-separated symbols (default: KLINE_SYMBOLS)")
    parser.add_argument("--interval", help="kline intervals, e.g. 1m or 1m,5m (default: KLINE_INTERVALS)")


def add_range_options(parser: ArgumentParser, *, until_default: str) -> None:
    """``--since``, ``--until``, ``--symbols`` (or ``all``) and ``--intervals``: the history commands' range."""
    parser.add_argument("--since", required=True, help="first day, e.g. 2024-01-01 (UTC)")
    parser.add_argument("--until", help=f"end, exclusive, e.g. 2025-01-01 (default: {until_default})")
    parser.add_argument("--symbols", help="comma-separated symbols, or 'all' (default: KLINE_SYMBOLS)")
    parser.add_argument("--intervals", help="e.g. 1m,1h (default: KLINE_INTERVALS)")


def stream_options(symbols: str | None, interval: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The symbols and intervals asked for, or the settings'; a bad value is a :class:`CommandError`."""
    try:
        return (
            parse_symbols(symbols, variable="--symbols") if symbols else _recorded_symbols(),
            parse_intervals(interval, variable="--interval") if interval else settings.BINANCEWS.intervals,
        )
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def _recorded_symbols() -> tuple[str, ...]:
    """``KLINE_SYMBOLS``; with ``all``, the exchange's listing the ingest kept in the database."""
    if not settings.BINANCEWS.all_symbols:
        return settings.BINANCEWS.symbols
    from klines.store.exchange import listed_symbols  # reads the database: only when asked

    return tuple(s.lower() for s in listed_symbols())
