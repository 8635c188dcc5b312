"""Pure: a kline document as MongoDB returns it -> :class:`KlineRecord`, the stored kline the serving side reads.

The serving side's reads (the feed's reconcile and loads, the mirror's pages)
skip Django's model: building a ``Kline`` per document and converting each
Decimal128 with bson's pure-Python ``Decimal128.to_decimal`` (~7 µs each, eight
per kline) was a fifth of a relay daphne's CPU and ~165 ms per page of 1,500.
:func:`decimal_from_bson` reads the same digits from the Decimal128's two
64-bit halves (~1 µs); the result is the very ``Decimal`` the model gives
(sign, digits and exponent), so payloads built from either are byte for byte
the same (tests/test_records.py compares both paths).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from bson.decimal128 import Decimal128, create_decimal128_context


class KlineRecord(NamedTuple):
    """One stored kline as the serving side reads it: the exchange's fields and when it was stored.

    A tuple (cheapest to build); it has every attribute the payload, row and
    stream-event builders read from a model instance or a ``ClosedKline``.
    """

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
    stored_at: datetime


# IEEE 754-2008 decimal128, binary integer decoding (BID), as bson stores it: the high 64 bits
# hold the sign, the combination field (exponent) and the coefficient's top 49 bits.
_SIGN = 1 << 63
_SPECIAL = 0b11 << 61  # combination bits 11: infinities, NaNs and non-canonical large coefficients
_COEFFICIENT_HIGH = (1 << 49) - 1
_MAX_COEFFICIENT = 10**34 - 1  # larger is non-canonical: the value is zero
_EXPONENT_BIAS = 6176
# Decimal128's own context (34 digits, its exponent range), in which every Decimal128 is exact.
_scaleb = create_decimal128_context().scaleb


def decimal_from_bson(value: Decimal128) -> Decimal:
    """``value.to_decimal()``: the same sign, digits and exponent, several times faster.

    The coefficient ``Decimal(int)`` is exact, and ``scaleb`` in Decimal128's context only sets the
    exponent (34 digits and that range need no rounding), so ``0E-8``, ``1E+2`` and 34 digits come
    out as stored. Negative zero and the rare encodings (infinity, NaN, non-canonical) go to bson's
    own conversion.
    """
    high, low = value.__getstate__()
    if high & _SPECIAL == _SPECIAL:
        return value.to_decimal()
    coefficient = (high & _COEFFICIENT_HIGH) << 64 | low
    if coefficient > _MAX_COEFFICIENT:
        return value.to_decimal()
    if high & _SIGN:
        if not coefficient:
            return value.to_decimal()
        coefficient = -coefficient
    return _scaleb(Decimal(coefficient), ((high >> 49) & 0x3FFF) - _EXPONENT_BIAS)


def utc(moment: datetime) -> datetime:
    """A BSON datetime (pymongo gives naive UTC) as Django's model gives it: aware, in UTC."""
    return moment.replace(tzinfo=UTC)


def record_from_document(document: Mapping[str, Any]) -> KlineRecord:
    """A kline document (every field; ``_id`` ignored) as a :class:`KlineRecord`."""
    d = decimal_from_bson
    return KlineRecord(
        document["symbol"],
        document["interval"],
        document["open_time"].replace(tzinfo=UTC),
        document["close_time"].replace(tzinfo=UTC),
        d(document["open"]),
        d(document["high"]),
        d(document["low"]),
        d(document["close"]),
        d(document["volume"]),
        d(document["quote_volume"]),
        int(document["trades"]),  # bson gives an Int64
        d(document["taker_buy_base_volume"]),
        d(document["taker_buy_quote_volume"]),
        document["stored_at"].replace(tzinfo=UTC),
    )
