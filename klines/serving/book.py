"""The in-memory payloads a serving process sends: no database query per connection."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from klines.serving.payloads import KlineLike, build_payload, encode_frame
from klines.window import HISTORY, WINDOW


class PayloadBook:
    """The newest ``history`` klines of each symbol of one interval, and their encoded frames.

    Every frame is encoded once, when its klines change, and shared by all
    connections: the default window's at once, another window's (a selection on
    ``/``) on first use after a change. Symbols can be added later (:meth:`ensure`).
    """

    def __init__(self, symbols: Sequence[str], zone: ZoneInfo, *, interval: str = "", history: int = HISTORY) -> None:
        self.symbols = tuple(s.upper() for s in symbols)
        self.zone = zone
        self.interval = interval
        self.history = history
        self._history: dict[str, dict[datetime, KlineLike]] = {s: {} for s in self.symbols}
        self._frames = {s: self._encode(s) for s in self.symbols}
        self._windows: dict[str, dict[int, str]] = {}  # other windows' frames, until the symbol changes

    def frames(self) -> list[str]:
        """One frame per symbol, in configured order."""
        return [self._frames[s] for s in self.symbols]

    def frame(self, symbol: str, window: int = WINDOW) -> str:
        symbol = symbol.upper()
        if window == WINDOW:
            return self._frames[symbol]
        frames = self._windows.setdefault(symbol, {})
        frame = frames.get(window)
        if frame is None:
            frame = frames[window] = self._encode(symbol, window)
        return frame

    def holds(self, symbol: str) -> bool:
        return symbol.upper() in self._history

    def ensure(self, symbol: str) -> None:
        """Hold ``symbol`` too (empty until :meth:`replace`)."""
        symbol = symbol.upper()
        if symbol not in self._history:
            self.symbols = (*self.symbols, symbol)
            self._history[symbol] = {}
            self._frames[symbol] = self._encode(symbol)

    def klines(self, symbol: str) -> list[KlineLike]:
        return list(self._history[symbol.upper()].values())

    def newest_open_time(self, symbol: str) -> datetime | None:
        """The open time of the symbol's newest kline (the history is kept oldest first: O(1), once per offer)."""
        return next(reversed(self._history[symbol.upper()]), None)

    def replace(self, symbol: str, klines: Iterable[KlineLike]) -> None:
        """Set a symbol's klines from a fresh database read."""
        history = {k.open_time: k for k in klines}
        self._history[symbol.upper()] = {t: history[t] for t in sorted(history)[-self.history :]}
        self._changed(symbol.upper())

    def add(self, symbol: str, kline: KlineLike) -> str | None:
        """Add one stored kline; return the symbol's new frame, or ``None`` if unchanged."""
        symbol = symbol.upper()
        history = self._history.get(symbol)
        if history is None:
            return None
        held = history.get(kline.open_time)
        if held is not None and (held.open, held.close) == (kline.open, kline.close):
            return None
        if held is None and len(history) >= self.history and kline.open_time < min(history):
            return None  # older than everything shown: it changes nothing
        history[kline.open_time] = kline
        for stale in sorted(history)[: -self.history]:
            del history[stale]
        self._history[symbol] = dict(sorted(history.items()))
        self._changed(symbol)
        return self._frames[symbol]

    def _changed(self, symbol: str) -> None:
        self._frames[symbol] = self._encode(symbol)
        self._windows.pop(symbol, None)

    def _encode(self, symbol: str, window: int = WINDOW) -> str:
        klines = list(self._history[symbol].values())
        return encode_frame(build_payload(symbol, klines, self.zone, window))
