"""Pure gap arithmetic over kline open times (milliseconds since the epoch).

Used by ``klines_status`` (holes in what is stored) and by the ingest (a stream
that skips a closed kline). The grid is anchored on stored open times, not the
epoch, so it holds for every fixed-length interval, weekly ones included.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Gap:
    first_ms: int  # open time of the first missing kline
    last_ms: int  # open time of the last missing kline
    missing: int


def find_gaps(open_ms: Sequence[int], *, interval_ms: int, expected_last_ms: int | None = None) -> list[Gap]:
    """Missing klines between consecutive ``open_ms`` (sorted) and after the last one up to ``expected_last_ms``."""
    gaps = []
    for before, after in zip(open_ms, open_ms[1:], strict=False):
        missing = (after - before) // interval_ms - 1
        if missing > 0:
            gaps.append(Gap(first_ms=before + interval_ms, last_ms=after - interval_ms, missing=missing))
    if open_ms and expected_last_ms is not None:
        missing = (expected_last_ms - open_ms[-1]) // interval_ms
        if missing > 0:
            first = open_ms[-1] + interval_ms
            gaps.append(Gap(first_ms=first, last_ms=first + (missing - 1) * interval_ms, missing=missing))
    return gaps


def without(gap: Gap, known: Sequence[tuple[int, int]], interval_ms: int) -> list[Gap]:
    """The parts of ``gap`` outside the ``known`` exchange gaps."""
    parts = [(gap.first_ms, gap.last_ms)]
    for first, last in known:
        carved = []
        for start, end in parts:
            if last < start or first > end:
                carved.append((start, end))
                continue
            if first > start:
                carved.append((start, first - interval_ms))
            if last < end:
                carved.append((last + interval_ms, end))
        parts = carved
    return [Gap(first_ms=s, last_ms=e, missing=(e - s) // interval_ms + 1) for s, e in parts if s <= e]


def classify_gaps(stored: Sequence[tuple[int, bool]], *, interval_ms: int, last_ms: int) -> tuple[list[Gap], list[Gap]]:
    """Split the gaps in ``stored`` (open time, stored by an earlier process), up to ``last_ms``, in two.

    Holes lie below a kline an earlier process stored: it missed them. The rest
    closed while no process stored them: below a kline this process stored,
    or after the newest stored.
    """
    opens = [open_ms for open_ms, _ in stored]
    earlier = {open_ms for open_ms, before in stored if before}
    holes: list[Gap] = []
    missed: list[Gap] = []
    for gap in find_gaps(opens, interval_ms=interval_ms, expected_last_ms=last_ms):
        (holes if gap.last_ms + interval_ms in earlier else missed).append(gap)
    return holes, missed


def last_expected_open(anchor_ms: int, *, until_ms: int, interval_ms: int, grace_ms: int = 0) -> int:
    """The newest open time on ``anchor_ms``'s grid whose kline closed at least ``grace_ms`` before ``until_ms``."""
    steps = (until_ms - grace_ms - interval_ms - anchor_ms) // interval_ms
    return anchor_ms + steps * interval_ms


class SequenceWatch:
    """The newest kline known per symbol (stored, queued or fetched); notice when the stream skips some.

    Thread-safe: the stream readers call :meth:`observe`, the backfill calls :meth:`note`.
    """

    def __init__(self, interval_ms: int) -> None:
        self.interval_ms = interval_ms
        self._newest: dict[str, int] = {}
        self.holes: dict[str, int] = {}  # per symbol: times the stream skipped klines
        self._lock = threading.Lock()

    def note(self, symbol: str, open_ms: int) -> None:
        """Record a kline known from elsewhere (the database, the REST backfill)."""
        with self._lock:
            if open_ms > self._newest.get(symbol, open_ms - 1):
                self._newest[symbol] = open_ms

    def observe(self, symbol: str, open_ms: int) -> int | None:
        """Record a closed kline from the stream; return the first missing open time if it skipped some."""
        with self._lock:
            newest = self._newest.get(symbol)
            if newest is None or open_ms > newest:
                self._newest[symbol] = open_ms
        if newest is not None and open_ms - newest > self.interval_ms:
            with self._lock:
                self.holes[symbol] = self.holes.get(symbol, 0) + 1
            return newest + self.interval_ms
        return None
