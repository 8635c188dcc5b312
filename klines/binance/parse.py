"""Pure parsing of Binance USD-M futures kline messages into one kline type.

Stream frames (``{"stream": ..., "data": {"e": "kline", "k": {...}}}``) and REST
rows (``GET /fapi/v1/klines``) both become :class:`ClosedKline`, so a kline stored
from either source is stored identically.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any


class MalformedMessage(ValueError):
    """A message from the exchange that cannot be used; the text says which part."""


@dataclass(frozen=True, kw_only=True)
class ClosedKline:
    symbol: str
    interval: str
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

    @property
    def key(self) -> tuple[str, str, datetime]:
        return (self.symbol, self.interval, self.open_time)

    def as_fields(self) -> dict[str, Any]:
        """Model field values, for ``Kline(**fields)``."""
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class StreamUpdate:
    """One kline event; ``closed`` is Binance's ``k.x``."""

    kline: ClosedKline
    closed: bool


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def datetime_to_ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def _decimal(value: Any, name: str) -> Decimal:
    if not isinstance(value, str | int):
        raise MalformedMessage(f"{name} is not a decimal string: {value!r}")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise MalformedMessage(f"{name} is not a number: {value!r}") from None
    if not number.is_finite():
        raise MalformedMessage(f"{name} is not finite: {value!r}")
    return number


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedMessage(f"{name} is not an integer: {value!r}")
    return value


def _field(mapping: dict[str, Any], key: str, where: str) -> Any:
    if key not in mapping:
        raise MalformedMessage(f"{where} has no {key!r}")
    return mapping[key]


def parse_kline_object(k: dict[str, Any]) -> ClosedKline:
    """Parse the ``k`` object of a kline event (closed or not)."""
    if not isinstance(k, dict):
        raise MalformedMessage(f"'k' is not an object: {k!r}")
    symbol = _field(k, "s", "k")
    interval = _field(k, "i", "k")
    if not isinstance(symbol, str) or not isinstance(interval, str):
        raise MalformedMessage(f"k.s / k.i are not strings: {symbol!r} {interval!r}")
    return ClosedKline(
        symbol=symbol.upper(),
        interval=interval,
        open_time=ms_to_datetime(_int(_field(k, "t", "k"), "k.t")),
        close_time=ms_to_datetime(_int(_field(k, "T", "k"), "k.T")),
        open=_decimal(_field(k, "o", "k"), "k.o"),
        high=_decimal(_field(k, "h", "k"), "k.h"),
        low=_decimal(_field(k, "l", "k"), "k.l"),
        close=_decimal(_field(k, "c", "k"), "k.c"),
        volume=_decimal(_field(k, "v", "k"), "k.v"),
        quote_volume=_decimal(_field(k, "q", "k"), "k.q"),
        trades=_int(_field(k, "n", "k"), "k.n"),
        taker_buy_base_volume=_decimal(_field(k, "V", "k"), "k.V"),
        taker_buy_quote_volume=_decimal(_field(k, "Q", "k"), "k.Q"),
    )


def parse_stream_message(text: str | bytes) -> StreamUpdate:
    """Parse one combined-stream frame; raise :class:`MalformedMessage` if unusable."""
    try:
        message = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedMessage(f"invalid JSON ({exc}): {str(text)[:120]!r}") from None
    if not isinstance(message, dict):
        raise MalformedMessage(f"frame is not an object: {str(text)[:120]!r}")
    data = _field(message, "data", "frame")
    if not isinstance(data, dict):
        raise MalformedMessage(f"'data' is not an object: {data!r}")
    event = data.get("e")
    if event != "kline":
        raise MalformedMessage(f"unexpected event type {event!r}")
    k = _field(data, "k", "data")
    kline = parse_kline_object(k)
    closed = k.get("x")
    if not isinstance(closed, bool):
        raise MalformedMessage(f"k.x is not a boolean: {closed!r}")
    return StreamUpdate(kline=kline, closed=closed)


def parse_rest_row(row: list[Any], *, symbol: str, interval: str) -> ClosedKline:
    """Parse one row of ``GET /fapi/v1/klines`` (an array of 12 values)."""
    if not isinstance(row, list) or len(row) < 11:
        raise MalformedMessage(f"REST kline row is not an array of 12: {row!r}")
    return ClosedKline(
        symbol=symbol.upper(),
        interval=interval,
        open_time=ms_to_datetime(_int(row[0], "row[0] open time")),
        close_time=ms_to_datetime(_int(row[6], "row[6] close time")),
        open=_decimal(row[1], "row[1] open"),
        high=_decimal(row[2], "row[2] high"),
        low=_decimal(row[3], "row[3] low"),
        close=_decimal(row[4], "row[4] close"),
        volume=_decimal(row[5], "row[5] volume"),
        quote_volume=_decimal(row[7], "row[7] quote volume"),
        trades=_int(row[8], "row[8] trades"),
        taker_buy_base_volume=_decimal(row[9], "row[9] taker buy base volume"),
        taker_buy_quote_volume=_decimal(row[10], "row[10] taker buy quote volume"),
    )


def stream_name(symbol: str, interval: str) -> str:
    return f"{symbol.lower()}@kline_{interval}"


def combined_stream_url(base_url: str, symbols: tuple[str, ...] | list[str], interval: str) -> str:
    """``<base>/stream?streams=btcusdt@kline_1m/...`` in the given symbol order."""
    streams = "/".join(stream_name(s, interval) for s in symbols)
    return f"{base_url.rstrip('/')}/stream?streams={streams}"
