"""Pure: a stored kline -> the row ``GET /fapi/v1/klines`` answers, with the decimals as Binance wrote them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from klines.binance.parse import datetime_to_ms


class StoredKline(Protocol):
    open_time: datetime
    close_time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    trades: int
    taker_buy_base_volume: Decimal
    taker_buy_quote_volume: Decimal


def decimal_text(value: Decimal) -> str:
    """The digits as stored, never in exponent form (``Decimal("0.00000010")`` -> ``"0.00000010"``)."""
    return format(value, "f")


def kline_row(kline: StoredKline) -> list[Any]:
    """``[openTime, "open", "high", "low", "close", "volume", closeTime, "quoteVolume", trades,
    "takerBuyBase", "takerBuyQuote", "0"]``; the last field is one Binance no longer uses."""
    return [
        datetime_to_ms(kline.open_time),
        decimal_text(kline.open),
        decimal_text(kline.high),
        decimal_text(kline.low),
        decimal_text(kline.close),
        decimal_text(kline.volume),
        datetime_to_ms(kline.close_time),
        decimal_text(kline.quote_volume),
        kline.trades,
        decimal_text(kline.taker_buy_base_volume),
        decimal_text(kline.taker_buy_quote_volume),
        "0",
    ]
