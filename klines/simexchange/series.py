"""A deterministic ground-truth price series for the simulated exchange.

Every kline is a pure function of (seed, symbol, open time): no state, any
range, and each kline opens at the previous kline's close. The same
:class:`SimKline` renders as a stream ``k`` object and as a REST row, so tests
can compare what was stored with what the exchange holds.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

# (start price, tick size) for the default symbols; others get a made-up pair.
KNOWN = {
    "BTCUSDT": ("96000", "0.1"),
    "BNBUSDT": ("650", "0.01"),
    "ETHUSDT": ("3400", "0.01"),
    "SOLUSDT": ("190", "0.001"),
    "XRPUSDT": ("2.2", "0.0001"),
}


def _unit(*parts: object) -> float:
    """A reproducible number in [0, 1) from the parts."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True, kw_only=True)
class SimKline:
    symbol: str
    interval: str
    open_ms: int
    close_ms: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    quote_volume: str
    trades: int
    taker_buy_base_volume: str
    taker_buy_quote_volume: str

    def stream_k(self, *, closed: bool) -> dict[str, Any]:
        """The ``k`` object of a kline event, as Binance sends it."""
        return {
            "t": self.open_ms,
            "T": self.close_ms,
            "s": self.symbol,
            "i": self.interval,
            "f": 100,
            "L": 100 + self.trades,
            "o": self.open,
            "c": self.close,
            "h": self.high,
            "l": self.low,
            "v": self.volume,
            "n": self.trades,
            "x": closed,
            "q": self.quote_volume,
            "V": self.taker_buy_base_volume,
            "Q": self.taker_buy_quote_volume,
            "B": "0",
        }

    def stream_event(self, *, closed: bool, event_ms: int) -> dict[str, Any]:
        """A whole combined-stream frame (``{"stream": ..., "data": ...}``)."""
        return {
            "stream": f"{self.symbol.lower()}@kline_{self.interval}",
            "data": {"e": "kline", "E": event_ms, "s": self.symbol, "k": self.stream_k(closed=closed)},
        }

    def rest_row(self) -> list[Any]:
        """One row of ``GET /fapi/v1/klines``."""
        return [
            self.open_ms,
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
            self.close_ms,
            self.quote_volume,
            self.trades,
            self.taker_buy_base_volume,
            self.taker_buy_quote_volume,
            "0",
        ]


class KlineSeries:
    """Klines for any symbol and open time, identical on every call."""

    def __init__(self, *, interval: str, interval_ms: int, seed: int = 1) -> None:
        self.interval = interval
        self.interval_ms = interval_ms
        self.seed = seed

    def index_at(self, moment_ms: int) -> int:
        return moment_ms // self.interval_ms

    def kline(self, symbol: str, index: int) -> SimKline:
        symbol = symbol.upper()
        base, tick = self._base(symbol)
        open_price = self._price(symbol, index - 1, base, tick)
        close_price = self._price(symbol, index, base, tick)
        wiggle = Decimal(str(1 + 0.002 * _unit(self.seed, symbol, index, "h")))
        high = max(open_price, close_price) * wiggle
        low = min(open_price, close_price) / wiggle
        volume = Decimal(str(round(10 + 500 * _unit(self.seed, symbol, index, "v"), 3)))
        taker = (volume * Decimal(str(round(_unit(self.seed, symbol, index, "t"), 2)))).quantize(Decimal("0.001"))
        average = (open_price + close_price) / 2
        return SimKline(
            symbol=symbol,
            interval=self.interval,
            open_ms=index * self.interval_ms,
            close_ms=(index + 1) * self.interval_ms - 1,
            open=str(open_price),
            high=str(high.quantize(tick)),
            low=str(low.quantize(tick)),
            close=str(close_price),
            volume=str(volume),
            quote_volume=str((volume * average).quantize(Decimal("0.00001"))),
            trades=int(50 + 2000 * _unit(self.seed, symbol, index, "n")),
            taker_buy_base_volume=str(taker),
            taker_buy_quote_volume=str((taker * average).quantize(Decimal("0.00001"))),
        )

    def partial(self, symbol: str, index: int, fraction: float) -> SimKline:
        """The still-open kline ``fraction`` of the way through its interval."""
        full = self.kline(symbol, index)
        open_price, close_price = Decimal(full.open), Decimal(full.close)
        tick = self._base(symbol.upper())[1]
        now = (open_price + (close_price - open_price) * Decimal(str(round(fraction, 3)))).quantize(tick)
        return SimKline(
            **{
                **full.__dict__,
                "close": str(now),
                "high": str(max(open_price, now)),
                "low": str(min(open_price, now)),
            }
        )

    def tick(self, symbol: str) -> Decimal:
        """The symbol's price step (its exchangeInfo ``tickSize``)."""
        return self._base(symbol.upper())[1]

    def _base(self, symbol: str) -> tuple[Decimal, Decimal]:
        base, tick = KNOWN.get(symbol, (str(round(1 + 99 * _unit(self.seed, symbol), 2)), "0.0001"))
        return Decimal(base), Decimal(tick)

    def _price(self, symbol: str, index: int, base: Decimal, tick: Decimal) -> Decimal:
        phase = _unit(self.seed, symbol) * 1000
        drift = 0.01 * math.sin((index + phase) / 37) + 0.004 * math.sin((index + phase) / 7)
        noise = 0.0015 * (_unit(self.seed, symbol, index) - 0.5)
        return (base * Decimal(str(1 + drift + noise))).quantize(tick, rounding=ROUND_HALF_EVEN)
