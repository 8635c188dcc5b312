"""The in-memory payloads a serving process sends: no database query per connection."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from klines.serving.payloads import KlineLike, build_payload, encode_frame
from klines.window import HISTORY


class PayloadBook:
    """The newest :data:`HISTORY` klines of each symbol and their encoded frames.

    Every frame is encoded once, when its klines change, and shared by all
    connections.
    """

    def __init__(self, symbols: Sequence[str], zone: ZoneInfo) -> None:
        self.symbols = tuple(s.upper() for s in symbols)
        self.zone = zone
        self._history: dict[str, dict[datetime, KlineLike]] = {s: {} for s in self.symbols}
        self._frames = {s: self._encode(s) for s in self.symbols}

    def frames(self) -> list[str]:
        """One frame per symbol, in configured order."""
        return [self._frames[s] for s in self.symbols]

    def frame(self, symbol: str) -> str:
        return self._frames[symbol.upper()]

    def newest_open_time(self, symbol: str) -> datetime | None:
        history = self._history[symbol.upper()]
        return max(history) if history else None

    def replace(self, symbol: str, klines: Iterable[KlineLike]) -> None:
        """Set a symbol's klines from a fresh database read."""
        history = {k.open_time: k for k in klines}
        self._history[symbol.upper()] = {t: history[t] for t in sorted(history)[-HISTORY:]}
        self._frames[symbol.upper()] = self._encode(symbol.upper())

    def add(self, symbol: str, kline: KlineLike) -> str | None:
        """Add one stored kline; return the symbol's new frame, or ``None`` if unchanged."""
        symbol = symbol.upper()
        history = self._history.get(symbol)
        if history is None:
            return None
        held = history.get(kline.open_time)
        if held is not None and (held.open, held.close) == (kline.open, kline.close):
            return None
        if held is None and len(history) >= HISTORY and kline.open_time < min(history):
            return None  # older than everything shown: it changes nothing
        history[kline.open_time] = kline
        for stale in sorted(history)[:-HISTORY]:
            del history[stale]
        self._history[symbol] = dict(sorted(history.items()))
        self._frames[symbol] = self._encode(symbol)
        return self._frames[symbol]

    def _encode(self, symbol: str) -> str:
        klines = list(self._history[symbol].values())
        return encode_frame(build_payload(symbol, klines, self.zone))
