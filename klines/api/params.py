"""Pure: the query of ``GET /fapi/v1/klines`` -> a :class:`KlineQuery`, or a :class:`BinanceError` as Binance answers.

Binance's rules: ``symbol`` and ``interval`` are mandatory; ``limit`` defaults
to 500 and may be 1 to 1500; ``startTime``/``endTime`` are milliseconds. With
``startTime`` the page starts at the oldest kline opened at or after it; with
only ``endTime`` it ends at the newest opened at or before it; with neither,
it holds the newest klines.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from klines.api.errors import (
    INVALID_INTERVAL,
    INVALID_SYMBOL,
    START_AFTER_END,
    illegal_characters,
    missing,
    not_valid,
)
from klines.binance.derivatives import FUNDING_DEFAULT_LIMIT, FUNDING_MAX_LIMIT

DEFAULT_LIMIT = 500
MAX_LIMIT = 1500
_INTEGER = re.compile(r"^-?[0-9]{1,20}$")
INTEGER_RANGE = "^-?[0-9]{1,20}$"
SYMBOL_RANGE = "^[A-Z0-9-_.]{1,20}$"
_SYMBOL = re.compile(r"^[A-Za-z0-9\-_.]{1,20}$")
LATEST_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last moment a datetime can hold


@dataclass(frozen=True, kw_only=True)
class KlineQuery:
    symbol: str  # upper case
    interval: str
    start_ms: int | None
    end_ms: int | None
    limit: int


def _integer(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    if not _INTEGER.match(raw):
        raise illegal_characters(name, INTEGER_RANGE)
    return int(raw)


def _required(query: Mapping[str, str], name: str) -> str:
    value = query.get(name, "").strip()
    if not value:
        raise missing(name)
    return value


def _limit_and_range(query: Mapping[str, str], *, default: int, maximum: int) -> tuple[int, int | None, int | None]:
    """``limit`` (``default`` without it, 1 to ``maximum``), ``startTime`` and ``endTime`` by Binance's rules."""
    limit = _integer(query, "limit")
    start_ms = _integer(query, "startTime")
    end_ms = _integer(query, "endTime")
    if limit is None:
        limit = default
    elif not 1 <= limit <= maximum:
        raise not_valid("limit")
    for name, value in (("startTime", start_ms), ("endTime", end_ms)):
        if value is not None and value < 0:
            raise not_valid(name)
    if start_ms is not None and end_ms is not None and start_ms > end_ms:
        raise START_AFTER_END
    return limit, start_ms, end_ms


def parse_kline_query(query: Mapping[str, str], *, symbols: Collection[str], intervals: Collection[str]) -> KlineQuery:
    """Check ``query`` against Binance's rules and what is recorded (``symbols`` upper case); the same rules
    serve ``/fapi/v1/markPriceKlines``."""
    symbol = _required(query, "symbol")
    if not _SYMBOL.match(symbol):
        raise illegal_characters("symbol", SYMBOL_RANGE)
    interval = _required(query, "interval")
    limit, start_ms, end_ms = _limit_and_range(query, default=DEFAULT_LIMIT, maximum=MAX_LIMIT)
    if symbol.upper() not in symbols:
        raise INVALID_SYMBOL
    if interval not in intervals:
        raise INVALID_INTERVAL
    return KlineQuery(
        symbol=symbol.upper(),
        interval=interval,
        start_ms=None if start_ms is None else min(start_ms, LATEST_MS),
        end_ms=None if end_ms is None else min(end_ms, LATEST_MS),
        limit=limit,
    )


@dataclass(frozen=True, kw_only=True)
class FundingQuery:
    symbols: tuple[str, ...]  # the one asked for, or every recorded symbol
    start_ms: int | None
    end_ms: int | None
    limit: int


def parse_funding_query(query: Mapping[str, str], *, symbols: Collection[str]) -> FundingQuery:
    """``GET /fapi/v1/fundingRate``: ``symbol`` optional (all recorded without it); ``limit`` 100 by default,
    1 to 1000; with ``startTime`` the oldest from it, otherwise the newest up to ``endTime`` (or now)."""
    symbol = query.get("symbol", "").strip()
    if symbol and not _SYMBOL.match(symbol):
        raise illegal_characters("symbol", SYMBOL_RANGE)
    limit, start_ms, end_ms = _limit_and_range(query, default=FUNDING_DEFAULT_LIMIT, maximum=FUNDING_MAX_LIMIT)
    if symbol and symbol.upper() not in symbols:
        raise INVALID_SYMBOL
    return FundingQuery(
        symbols=(symbol.upper(),) if symbol else tuple(sorted(symbols)),
        start_ms=None if start_ms is None else min(start_ms, LATEST_MS),
        end_ms=None if end_ms is None else min(end_ms, LATEST_MS),
        limit=limit,
    )
