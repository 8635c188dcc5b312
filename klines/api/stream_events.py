"""Pure: kline events in Binance's stream format, encoded once per stream for every subscriber."""

from __future__ import annotations

import json
from typing import Any, Protocol

from klines.api.rows import StoredKline, decimal_text
from klines.binance.parse import datetime_to_ms


class EventKline(StoredKline, Protocol):
    """A stored kline that also names its stream."""

    symbol: str
    interval: str


def kline_event(kline: EventKline, *, closed: bool, event_ms: int) -> dict[str, Any]:
    """Binance's kline event for a kline from the record. The record keeps no trade ids: ``f``/``L`` are 0."""
    return {
        "e": "kline",
        "E": event_ms,
        "s": kline.symbol,
        "k": {
            "t": datetime_to_ms(kline.open_time),
            "T": datetime_to_ms(kline.close_time),
            "s": kline.symbol,
            "i": kline.interval,
            "f": 0,
            "L": 0,
            "o": decimal_text(kline.open),
            "c": decimal_text(kline.close),
            "h": decimal_text(kline.high),
            "l": decimal_text(kline.low),
            "v": decimal_text(kline.volume),
            "n": kline.trades,
            "x": closed,
            "q": decimal_text(kline.quote_volume),
            "V": decimal_text(kline.taker_buy_base_volume),
            "Q": decimal_text(kline.taker_buy_quote_volume),
            "B": "0",
        },
    }


def encode(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"))


def combined_frame(stream: str, data_text: str) -> str:
    """``{"stream": ..., "data": ...}`` around an already encoded event (no second encoding)."""
    return f'{{"stream":"{stream}","data":{data_text}}}'
