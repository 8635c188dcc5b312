"""Pure: what ``export_klines`` writes for one (symbol, interval), the holes it finds, and its summary."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from klines.binance.parse import datetime_to_ms, ms_to_datetime
from klines.ingest.gaps import Gap, find_gaps, without

LISTED = 10  # holes named in the summary (all are counted)


class HoleFinder:
    """The missing open times of ``[start, end)``, fed the stored open times (ms) in order, batch by batch.

    Ranges the exchange itself has no klines for (``known``: first and last open
    time, ms) are not holes.
    """

    def __init__(self, start_ms: int, end_ms: int, interval_ms: int, known: Sequence[tuple[int, int]] = ()) -> None:
        self.interval_ms = interval_ms
        self.end_ms = end_ms
        self.known = known
        self.previous = start_ms - interval_ms  # a virtual kline just before the range: a leading hole counts
        self.holes: list[Gap] = []

    def feed(self, open_ms: Sequence[int]) -> None:
        if open_ms:
            self._add(find_gaps([self.previous, *open_ms], interval_ms=self.interval_ms))
            self.previous = open_ms[-1]

    def finish(self) -> list[Gap]:
        """Every hole, the tail after the last stored kline included."""
        last = self.end_ms - self.interval_ms
        if self.previous < last:
            self._add(find_gaps([self.previous], interval_ms=self.interval_ms, expected_last_ms=last))
            self.previous = last
        return self.holes

    def _add(self, gaps: list[Gap]) -> None:
        for gap in gaps:
            self.holes.extend(without(gap, self.known, self.interval_ms))


@dataclass
class PairExport:
    """What one (symbol, interval) export wrote."""

    symbol: str
    interval: str
    start: datetime
    end: datetime  # exclusive
    files: list[Path] = field(default_factory=list)
    klines: int = 0
    first: datetime | None = None
    last: datetime | None = None
    holes: list[Gap] = field(default_factory=list)

    def seen(self, open_times: Sequence[datetime]) -> None:
        if open_times:
            self.first = self.first or open_times[0]
            self.last = open_times[-1]
            self.klines += len(open_times)

    def lines(self) -> list[str]:
        span = "nothing stored in range"
        if self.first is not None and self.last is not None:
            span = f"{self.first:%Y-%m-%d %H:%M}..{self.last:%Y-%m-%d %H:%M} UTC"
        names = ", ".join(str(p) for p in self.files[:3]) + (
            f" and {len(self.files) - 3} more" if len(self.files) > 3 else ""
        )
        lines = [f"{self.symbol} {self.interval}: {self.klines} klines, {span} -> {names or 'no file'}"]
        missing = sum(h.missing for h in self.holes)
        if missing:
            lines.append(f"  {missing} klines missing in {len(self.holes)} holes (exported what exists):")
            lines.extend(f"    {hole_text(h)}" for h in self.holes[:LISTED])
            if len(self.holes) > LISTED:
                lines.append(f"    and {len(self.holes) - LISTED} more holes")
        else:
            lines.append(
                f"  complete: every kline from {self.start:%Y-%m-%d %H:%M} to before {self.end:%Y-%m-%d %H:%M} UTC"
            )
        return lines


def hole_text(hole: Gap) -> str:
    first, last = ms_to_datetime(hole.first_ms), ms_to_datetime(hole.last_ms)
    return f"{first:%Y-%m-%d %H:%M}..{last:%Y-%m-%d %H:%M} UTC ({hole.missing} klines)"


def open_ms(open_times: Sequence[datetime]) -> list[int]:
    return [datetime_to_ms(t) for t in open_times]
