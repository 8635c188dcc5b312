"""Pure: Binance's kline, field by field, written down once.

A kline is the same twelve values wherever it travels: a row of ``GET /fapi/v1/klines``
(and of Binance's monthly archive CSVs, the same columns), the ``k`` object of a
stream event, a stored document, the model. :data:`KLINE_FIELDS` names each value
once, in Binance's row order, with its row index, its stream key and its kind;
:data:`IGNORE` is the twelfth column Binance no longer fills (always ``"0"``).

The parsers derive their field lists from it at import time. The encoders on hot
paths (``kline_row``, ``kline_event``, ``record_from_document``) and the declared
types (the model, ``ClosedKline``, ``KlineRecord``, ``SimKline``) stay written out,
for speed and to be read; tests/test_schema.py compares each with this module, so a
field added in one place and not the others fails a test.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

Kind = Literal["time", "decimal", "int", "ignore"]

TIME: Kind = "time"  # ms since the epoch on the wire; an aware UTC datetime in Python
DECIMAL: Kind = "decimal"  # a decimal string on the wire, written as Binance wrote it; a Decimal in Python
INT: Kind = "int"  # a JSON integer (the trade count)
IGNORED: Kind = "ignore"  # the unused twelfth column: "0" on the wire, never stored


class KlineField(NamedTuple):
    """One value of a kline: its attribute (model field), REST row index, stream ``k`` key and kind."""

    name: str
    row: int
    key: str
    kind: Kind

    @property
    def words(self) -> str:
        """The name in error messages: ``"quote volume"``."""
        return self.name.replace("_", " ")


# Binance's kline row: [open_time, open, high, low, close, volume, close_time, quote_volume, trades,
# taker_buy_volume, taker_buy_quote_volume, ignore]. The stored fields, in that order.
KLINE_FIELDS: tuple[KlineField, ...] = (
    KlineField("open_time", 0, "t", TIME),
    KlineField("open", 1, "o", DECIMAL),
    KlineField("high", 2, "h", DECIMAL),
    KlineField("low", 3, "l", DECIMAL),
    KlineField("close", 4, "c", DECIMAL),
    KlineField("volume", 5, "v", DECIMAL),
    KlineField("close_time", 6, "T", TIME),
    KlineField("quote_volume", 7, "q", DECIMAL),
    KlineField("trades", 8, "n", INT),
    KlineField("taker_buy_base_volume", 9, "V", DECIMAL),
    KlineField("taker_buy_quote_volume", 10, "Q", DECIMAL),
)
IGNORE = KlineField("ignore", 11, "B", IGNORED)
IGNORE_VALUE = "0"  # what the mirror and the simulator write in it
ROW_FIELDS: tuple[KlineField, ...] = (*KLINE_FIELDS, IGNORE)  # every column of a REST row, in order

# What names a kline's series: not in a REST row (the request names it); ``s`` and ``i`` in a stream ``k``.
IDENTITY: tuple[str, ...] = ("symbol", "interval")
IDENTITY_KEYS: tuple[str, ...] = ("s", "i")

# The order of the stored fields in the model, ``ClosedKline`` and ``KlineRecord`` (times first, as the
# migration has them; the row puts close_time after volume).
MODEL_ORDER: tuple[str, ...] = (
    *IDENTITY,
    "open_time",
    "close_time",
    *(f.name for f in KLINE_FIELDS if f.kind != TIME),
)

# A stream event's ``k`` object as Binance sends it, key for key in its order: the fields above,
# the series, first and last trade ids (``f``, ``L``), whether the kline is closed (``x``), and ``B`` (ignore).
STREAM_KEYS: tuple[str, ...] = ("t", "T", "s", "i", "f", "L", "o", "c", "h", "l", "v", "n", "x", "q", "V", "Q", "B")

TIME_NAMES = frozenset(f.name for f in KLINE_FIELDS if f.kind == TIME)
DECIMAL_NAMES = frozenset(f.name for f in KLINE_FIELDS if f.kind == DECIMAL)
BY_NAME = {f.name: f for f in KLINE_FIELDS}
