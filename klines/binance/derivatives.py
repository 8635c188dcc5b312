"""Pure: Binance's mark-price klines and funding rates (``/fapi/v1/markPriceKlines``, ``/fapi/v1/fundingRate``).

A mark-price row has the kline row's twelve places, but only the times and the
four prices carry data; place 8 is the number of price samples, the others are
``"0"``. A funding rate is ``{"symbol", "fundingTime", "fundingRate", "markPrice"}``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from klines.binance.parse import MalformedMessage, _decimal, _int, _time, datetime_to_ms

# freqtrade (2026.9) asks a Binance futures mirror for mark-price candles at this interval (its
# ``mark_ohlcv_timeframe``), whatever timeframes the user downloads; the ingest records it too.
FREQTRADE_MARK_INTERVAL = "1h"
MARK_DEFAULT_LIMIT, MARK_MAX_LIMIT = 500, 1500
FUNDING_DEFAULT_LIMIT, FUNDING_MAX_LIMIT = 100, 1000
FUNDING_WEIGHT = 1  # Binance: its own 500 requests per 5 minutes; 1 against the weight budget


@dataclass(frozen=True, kw_only=True)
class MarkKline:
    symbol: str
    interval: str
    open_time: datetime
    close_time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    samples: int  # Binance's "number of basic data"

    def as_fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @property
    def key(self) -> tuple[str, str, datetime]:
        return (self.symbol, self.interval, self.open_time)


@dataclass(frozen=True, kw_only=True)
class Funding:
    symbol: str
    funding_time: datetime
    funding_rate: Decimal
    mark_price: Decimal

    def as_fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @property
    def key(self) -> tuple[str, datetime]:
        return (self.symbol, self.funding_time)


class MarkPrices(Protocol):
    """A mark-price kline, parsed or stored."""

    open_time: datetime
    close_time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    samples: int


class FundingFields(Protocol):
    """A funding rate, parsed or stored."""

    symbol: str
    funding_time: datetime
    funding_rate: Decimal
    mark_price: Decimal


def mark_intervals(intervals: Iterable[str]) -> tuple[str, ...]:
    """The mark-price intervals recorded and served: the kline intervals and freqtrade's."""
    return tuple(dict.fromkeys([*intervals, FREQTRADE_MARK_INTERVAL]))


def parse_mark_row(row: Any, *, symbol: str, interval: str) -> MarkKline:
    """One row of ``GET /fapi/v1/markPriceKlines``; :class:`MalformedMessage` if it is not one."""
    if not isinstance(row, list) or len(row) < 9:
        raise MalformedMessage(f"mark-price row is not an array of 12: {row!r}", kind="row")
    return MarkKline(
        symbol=symbol.upper(),
        interval=interval,
        open_time=_time(row[0], "row[0] open time"),
        close_time=_time(row[6], "row[6] close time"),
        open=_decimal(row[1], "row[1] open"),
        high=_decimal(row[2], "row[2] high"),
        low=_decimal(row[3], "row[3] low"),
        close=_decimal(row[4], "row[4] close"),
        samples=_int(row[8], "row[8] samples"),
    )


def parse_funding(item: Any) -> Funding:
    """One entry of ``GET /fapi/v1/fundingRate``; :class:`MalformedMessage` if it is not one."""
    if not isinstance(item, dict) or not isinstance(item.get("symbol"), str):
        raise MalformedMessage(f"funding entry is not an object with a symbol: {item!r}", kind="funding")
    try:
        return Funding(
            symbol=item["symbol"].upper(),
            funding_time=_time(item["fundingTime"], "fundingTime"),
            funding_rate=_decimal(item["fundingRate"], "fundingRate"),
            # Binance leaves markPrice empty on its oldest entries.
            mark_price=_decimal(item.get("markPrice") or "0", "markPrice"),
        )
    except KeyError as exc:
        raise MalformedMessage(f"funding entry has no {exc}: {item!r}", kind=f"funding.{exc.args[0]}") from None


def text(value: Decimal) -> str:
    """The digits as stored, never in exponent form."""
    return format(value, "f")


def mark_row(kline: MarkPrices) -> list[Any]:
    """Binance's row: ``[openTime, "open", "high", "low", "close", "0", closeTime, "0", samples, "0", "0", "0"]``."""
    return [
        datetime_to_ms(kline.open_time),
        text(kline.open),
        text(kline.high),
        text(kline.low),
        text(kline.close),
        "0",
        datetime_to_ms(kline.close_time),
        "0",
        kline.samples,
        "0",
        "0",
        "0",
    ]


def funding_entry(funding: FundingFields) -> dict[str, Any]:
    return {
        "symbol": funding.symbol,
        "fundingTime": datetime_to_ms(funding.funding_time),
        "fundingRate": text(funding.funding_rate),
        "markPrice": text(funding.mark_price),
    }
