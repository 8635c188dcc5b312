"""Pure parsing of Binance USD-M futures kline messages into one kline type.

Stream frames (``{"stream": ..., "data": {"e": "kline", "k": {...}}}``) and REST
rows (``GET /fapi/v1/klines``) both become :class:`ClosedKline`, so a kline stored
from either source is stored identically.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from klines.binance.schema import BY_NAME, DECIMAL, IDENTITY, INT, KLINE_FIELDS, MODEL_ORDER, ROW_FIELDS, TIME

# What the store holds exactly. klines/models.py's PRICE (max_digits 30, decimal_places 12):
# at most 12 decimal places and 18 whole digits, counted on the value (trailing zeros after
# the point are not digits of the value). MongoDB's Decimal128: at most 34 significant digits
# *as written* and an exponent within its range; bson would otherwise raise (1E+9999) or
# silently drop trailing zeros (a 40-digit "1.000..."), and we store the digits as written.
DECIMAL_PLACES = 12
WHOLE_DIGITS = 30 - DECIMAL_PLACES
DECIMAL128_DIGITS = 34
DECIMAL128_EXPONENTS = (-6176, 6111)
# BSON's int64 (trades), and times the calendar holds (open and close times, ms since the epoch).
INT64_MAX = 2**63 - 1
MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31 23:59:59.999 UTC
# What Binance sends: plainly within every limit above, so the digit count below is skipped (parser speed).
PLAIN_DECIMAL = re.compile(r"-?[0-9]{1,18}(?:\.[0-9]{0,12})?")


# A closed kline cannot close after the event that reports it (``E``, the exchange's clock); a second's leeway.
FUTURE_TOLERANCE_MS = 1000


class MalformedMessage(ValueError):
    """A message from the exchange that cannot be used; the text says which part, ``kind`` names it."""

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message)
        self.kind = kind  # the offending field ("k.c", "row[4] close"), or "json", "event", "shape"


@dataclass(frozen=True)
class ClosedKline:
    """One kline, parsed. Its fields are klines/binance/schema.py's, in ``MODEL_ORDER`` (the parsers pass them so)."""

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
        """Model field values, for ``Kline(**fields)`` (shallow: every value is immutable; ``asdict`` deep-copies)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True, kw_only=True)
class StreamUpdate:
    """One kline event; ``closed`` is Binance's ``k.x``; ``data`` the event object as received (to relay verbatim)."""

    kline: ClosedKline
    closed: bool
    data: dict[str, Any] | None = None


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def datetime_to_ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def _decimal(value: Any, name: str) -> Decimal:
    if not isinstance(value, str | int):
        raise MalformedMessage(f"{name} is not a decimal string: {value!r}", kind=name)
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise MalformedMessage(f"{name} is not a number: {value!r}", kind=name) from None
    if not number.is_finite():
        raise MalformedMessage(f"{name} is not finite: {value!r}", kind=name)
    if isinstance(value, str) and PLAIN_DECIMAL.fullmatch(value):
        return number
    return storable(number, name)


def storable(number: Decimal, name: str) -> Decimal:
    """``number`` unchanged if the store can hold it exactly, digit for digit; else :class:`MalformedMessage`."""
    written = number.as_tuple()
    low, high = DECIMAL128_EXPONENTS
    if len(written.digits) > DECIMAL128_DIGITS or not low <= int(written.exponent) <= high:
        raise MalformedMessage(f"{name} does not fit a Decimal128 (34 digits): {_short(number)}", kind=name)
    # The value's own digits: without trailing zeros (Decimal.normalize() would round to 28 digits).
    digits, exponent = list(written.digits), int(written.exponent)
    while len(digits) > 1 and digits[-1] == 0:
        digits.pop()
        exponent += 1
    if digits == [0]:
        exponent = 0
    if max(0, -exponent) > DECIMAL_PLACES:
        raise MalformedMessage(f"{name} has more than {DECIMAL_PLACES} decimal places: {_short(number)}", kind=name)
    if digits != [0] and len(digits) + exponent > WHOLE_DIGITS:
        raise MalformedMessage(
            f"{name} has more than {WHOLE_DIGITS} digits before the point: {_short(number)}", kind=name
        )
    return number


def _short(number: Decimal) -> str:
    text = str(number)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _int(value: Any, name: str, *, maximum: int = INT64_MAX) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedMessage(f"{name} is not an integer: {value!r}", kind=name)
    if not 0 <= value <= maximum:
        raise MalformedMessage(f"{name} is out of range: {value!r}", kind=name)
    return value


def _time(value: Any, name: str) -> datetime:
    return ms_to_datetime(_int(value, name, maximum=MAX_TIME_MS))


def _field(mapping: dict[str, Any], key: str, where: str) -> Any:
    if key not in mapping:
        raise MalformedMessage(f"{where} has no {key!r}", kind=f"{where}.{key}")
    return mapping[key]


# The schema's fields as the parsers read them, in ClosedKline's order after symbol and interval (so passed
# positionally: faster than keywords): (stream key or row index, converter, the part's name in a complaint).
_CONVERTERS = {TIME: _time, DECIMAL: _decimal, INT: _int}
_PARSED = tuple(BY_NAME[name] for name in MODEL_ORDER[len(IDENTITY) :])
_FROM_STREAM = tuple((f.key, _CONVERTERS[f.kind], f"k.{f.key}") for f in _PARSED)
_FROM_ROW = tuple((f.row, _CONVERTERS[f.kind], f"row[{f.row}] {f.words}") for f in _PARSED)


def parse_kline_object(k: dict[str, Any]) -> ClosedKline:
    """Parse the ``k`` object of a kline event (closed or not)."""
    if not isinstance(k, dict):
        raise MalformedMessage(f"'k' is not an object: {k!r}", kind="k")
    symbol = _field(k, "s", "k")
    interval = _field(k, "i", "k")
    if not isinstance(symbol, str) or not isinstance(interval, str):
        raise MalformedMessage(f"k.s / k.i are not strings: {symbol!r} {interval!r}", kind="k.s")
    try:
        return ClosedKline(symbol.upper(), interval, *[convert(k[key], part) for key, convert, part in _FROM_STREAM])
    except KeyError as missing:  # the converters raise MalformedMessage only
        raise MalformedMessage(f"k has no {missing.args[0]!r}", kind=f"k.{missing.args[0]}") from None


def parse_stream_message(text: str | bytes) -> StreamUpdate:
    """Parse one combined-stream frame; raise :class:`MalformedMessage` if unusable."""
    try:
        message = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedMessage(f"invalid JSON ({exc}): {str(text)[:120]!r}", kind="json") from None
    if not isinstance(message, dict):
        raise MalformedMessage(f"frame is not an object: {str(text)[:120]!r}", kind="json")
    data = _field(message, "data", "frame")
    if not isinstance(data, dict):
        raise MalformedMessage(f"'data' is not an object: {data!r}", kind="data")
    event = data.get("e")
    if event != "kline":
        raise MalformedMessage(f"unexpected event type {event!r}", kind="event")
    k = _field(data, "k", "data")
    kline = parse_kline_object(k)
    closed = k.get("x")
    if not isinstance(closed, bool):
        raise MalformedMessage(f"k.x is not a boolean: {closed!r}", kind="k.x")
    event_ms = data.get("E")
    if closed and isinstance(event_ms, int) and datetime_to_ms(kline.close_time) > event_ms + FUTURE_TOLERANCE_MS:
        raise MalformedMessage(
            f"closed kline {kline.symbol} {kline.interval} {kline.open_time:%Y-%m-%d %H:%M} closes after the "
            f"exchange's own event time E={event_ms} (future-dated)",
            kind="future",
        )
    return StreamUpdate(kline=kline, closed=closed, data=data)


def parse_rest_row(row: list[Any], *, symbol: str, interval: str) -> ClosedKline:
    """Parse one row of ``GET /fapi/v1/klines`` (an array of 12 values)."""
    if not isinstance(row, list) or len(row) < len(KLINE_FIELDS):
        raise MalformedMessage(f"REST kline row is not an array of {len(ROW_FIELDS)}: {row!r}", kind="row")
    return ClosedKline(symbol.upper(), interval, *[convert(row[index], part) for index, convert, part in _FROM_ROW])


def stream_name(symbol: str, interval: str) -> str:
    return f"{symbol.lower()}@kline_{interval}"


def combined_stream_url(base_url: str, streams: Sequence[tuple[str, str]]) -> str:
    """``<base>/stream?streams=btcusdt@kline_1m/...`` for ``(symbol, interval)`` pairs, in the given order."""
    names = "/".join(stream_name(symbol, interval) for symbol, interval in streams)
    return f"{base_url.rstrip('/')}/stream?streams={names}"
