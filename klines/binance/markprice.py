"""Pure: Binance's USD-M mark-price stream (``<symbol>@markPrice@1s``), parsed into one update type.

A combined-stream frame is ``{"stream": "btcusdt@markPrice@1s", "data": {"e": "markPriceUpdate", "E": event
time, "s": "BTCUSDT", "p": mark price, "i": index price, "P": estimated settle price, "r": funding rate,
"T": next funding time}}``; ``r`` is the rate that applies at ``T``. Binance routes the stream under
``/market``, as the kline streams (since 2026-04-23 an unrouted connection gets no mark prices).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from klines.binance.parse import MAX_TIME_MS, MalformedMessage, _decimal, _field, _int

MARK_STREAM = "markPrice@1s"  # one update a second: the funding is read within a second of its time
KIND = "markPrice"  # the prefix of a malformed mark-price frame's kind (``markPrice.r``)


@dataclass(frozen=True, kw_only=True)
class MarkPriceUpdate:
    symbol: str
    event_ms: int  # ``E``: the exchange's clock
    mark_price: Decimal
    funding_rate: Decimal  # applies at ``next_funding_ms``
    next_funding_ms: int


def mark_stream_name(symbol: str) -> str:
    return f"{symbol.lower()}@{MARK_STREAM}"


def mark_stream_url(base_url: str, symbols: Sequence[str]) -> str:
    """``<base>/stream?streams=btcusdt@markPrice@1s/...``: ``base`` is the kline streams' (``/market``)."""
    return f"{base_url.rstrip('/')}/stream?streams={'/'.join(mark_stream_name(s) for s in symbols)}"


def _bad(message: str, part: str) -> MalformedMessage:
    return MalformedMessage(message, kind=f"{KIND}.{part}")


def parse_mark_price_message(text: str | bytes) -> MarkPriceUpdate:
    """One combined-stream frame of the mark-price stream; :class:`MalformedMessage` (kind ``markPrice.<part>``)
    if it cannot be used. A perpetual's ``r`` and ``T`` are required: without them there is no funding to record."""
    try:
        message = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad(f"invalid JSON ({exc}): {str(text)[:120]!r}", "json") from None
    if not isinstance(message, dict) or not isinstance(message.get("data"), dict):
        raise _bad(f"frame is not an object with a 'data' object: {str(text)[:120]!r}", "data")
    data = message["data"]
    if data.get("e") != "markPriceUpdate":
        raise _bad(f"unexpected event type {data.get('e')!r}", "event")
    try:
        symbol = _field(data, "s", "data")
        if not isinstance(symbol, str) or not symbol:
            raise _bad(f"data.s is not a symbol: {symbol!r}", "s")
        return MarkPriceUpdate(
            symbol=symbol.upper(),
            event_ms=_int(_field(data, "E", "data"), "E", maximum=MAX_TIME_MS),
            mark_price=_decimal(_field(data, "p", "data"), "p"),
            funding_rate=_decimal(_field(data, "r", "data"), "r"),
            next_funding_ms=_int(_field(data, "T", "data"), "T", maximum=MAX_TIME_MS),
        )
    except MalformedMessage as exc:
        if exc.kind.startswith(f"{KIND}."):
            raise
        part = exc.kind.removeprefix("data.")
        raise _bad(str(exc), part) from None
