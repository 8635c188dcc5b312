"""Pure checks of the names Binance uses: symbols and kline intervals."""

from __future__ import annotations

import re

from klines.binance.intervals import INTERVAL_SECONDS

_SYMBOL_RE = re.compile(r"^[a-z0-9]{2,30}$")


def parse_symbols(raw: str, *, variable: str = "KLINE_SYMBOLS") -> tuple[str, ...]:
    """Split a comma-separated symbol list, lower-cased, order kept, duplicates dropped."""
    symbols = tuple(dict.fromkeys(s.strip().lower() for s in raw.split(",") if s.strip()))
    if not symbols:
        raise ValueError(f"{variable} is empty; set it to e.g. 'btcusdt,ethusdt'")
    for symbol in symbols:
        if not _SYMBOL_RE.match(symbol):
            raise ValueError(f"{variable}: {symbol!r} is not a Binance symbol (letters and digits only)")
    return symbols


def parse_interval(raw: str, *, variable: str = "KLINE_INTERVAL") -> str:
    interval = raw.strip()
    if interval == "1M":
        raise ValueError(
            f"{variable}: 1M (calendar months) is not recorded: its length varies, and the record's gap "
            "checks need a fixed one; use 1w or shorter"
        )
    if interval not in INTERVAL_SECONDS:
        known = ", ".join(INTERVAL_SECONDS)
        raise ValueError(f"{variable}: unknown interval {raw!r}; use one of {known}")
    return interval


def parse_intervals(raw: str, *, variable: str = "KLINE_INTERVALS") -> tuple[str, ...]:
    """A comma-separated list of intervals, order kept (the first is the default of ``/``), duplicates dropped."""
    intervals = tuple(dict.fromkeys(parse_interval(part, variable=variable) for part in raw.split(",") if part.strip()))
    if not intervals:
        raise ValueError(f"{variable} is empty; set it to e.g. '1m' or '1m,5m,1h'")
    return intervals
