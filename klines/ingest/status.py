"""Pure: what ``klines_status`` says about one symbol's stored klines in a time window."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from klines.binance.parse import datetime_to_ms, ms_to_datetime
from klines.ingest.gaps import Gap, find_gaps, last_expected_open, without


@dataclass(frozen=True, kw_only=True)
class SymbolStatus:
    symbol: str
    interval: str
    newest: datetime | None  # newest stored open time, in or out of the window
    stored: int  # klines stored in the window
    gaps: tuple[Gap, ...]
    future: bool = False  # the newest stored kline opens after now: not a real exchange's
    oldest: datetime | None = None  # oldest stored open time, when asked for (the record's start)
    exchange_gaps: tuple[Gap, ...] = ()  # klines the exchange itself does not have (recorded by the repair)

    @property
    def healthy(self) -> bool:
        return self.stored > 0 and not self.gaps and not self.future

    def line(self) -> str:
        newest = "nothing stored" if self.newest is None else f"newest {self.newest:%Y-%m-%d %H:%M} UTC"
        if self.future:
            newest += " (FUTURE-DATED: opens after now; simulated klines in this database?)"
        if self.oldest is not None:
            newest = f"oldest {self.oldest:%Y-%m-%d %H:%M} UTC, {newest}"
        head = f"{self.symbol} {self.interval}: {newest}, {self.stored} in range"
        if self.exchange_gaps:
            missing = sum(g.missing for g in self.exchange_gaps)
            listed = ", ".join(_describe(g) for g in self.exchange_gaps[:10])
            more = f" and {len(self.exchange_gaps) - 10} more" if len(self.exchange_gaps) > 10 else ""
            head += f", {len(self.exchange_gaps)} exchange gaps ({missing} klines never traded): {listed}{more}"
        if self.stored == 0:
            return f"{head}, GAP: no kline stored in the range"
        if not self.gaps:
            return f"{head}, no gaps"
        missing = sum(g.missing for g in self.gaps)
        listed = ", ".join(_describe(g) for g in self.gaps[:10])
        more = f" and {len(self.gaps) - 10} more" if len(self.gaps) > 10 else ""
        return f"{head}, {len(self.gaps)} GAPS ({missing} klines missing): {listed}{more}"


def _describe(gap: Gap) -> str:
    first, last = ms_to_datetime(gap.first_ms), ms_to_datetime(gap.last_ms)
    span = f"{first:%Y-%m-%d %H:%M}" if gap.missing == 1 else f"{first:%Y-%m-%d %H:%M}..{last:%Y-%m-%d %H:%M}"
    return f"{span} ({gap.missing})"


def symbol_status(
    symbol: str,
    interval: str,
    *,
    open_times: Sequence[datetime],
    newest: datetime | None,
    until: datetime,
    interval_ms: int,
    grace_ms: int,
    now: datetime | None = None,
    oldest: datetime | None = None,
    exchange_gaps: Sequence[tuple[datetime, datetime]] = (),
) -> SymbolStatus:
    """Gaps between the first stored kline in the window and the last one closed ``grace_ms`` before ``until``.

    The record may start inside the window (the service was first started
    then), so missing klines before the first stored one are not gaps; missing
    klines at the end are (the ingest stalled). Missing klines inside ``exchange_gaps`` (first and last open
    time of ranges the exchange has no klines for) are reported apart, and are not gaps.
    """
    opens = [datetime_to_ms(t) for t in open_times]
    expected_last = None
    if opens:
        expected_last = last_expected_open(
            opens[0], until_ms=datetime_to_ms(until), interval_ms=interval_ms, grace_ms=grace_ms
        )
    known = [(datetime_to_ms(first), datetime_to_ms(last)) for first, last in exchange_gaps]
    found = find_gaps(opens, interval_ms=interval_ms, expected_last_ms=expected_last)
    gaps = [part for gap in found for part in without(gap, known, interval_ms)]
    exchange = [g for g in _gaps_of(known, interval_ms) if any(_overlap(g, f) for f in found)]
    future = newest is not None and now is not None and newest > now
    return SymbolStatus(
        symbol=symbol.upper(),
        interval=interval,
        newest=newest,
        stored=len(opens),
        gaps=tuple(gaps),
        future=future,
        oldest=oldest,
        exchange_gaps=tuple(exchange),
    )


def _gaps_of(ranges: Sequence[tuple[int, int]], interval_ms: int) -> list[Gap]:
    return [Gap(first_ms=f, last_ms=la, missing=(la - f) // interval_ms + 1) for f, la in ranges]


def _overlap(a: Gap, b: Gap) -> bool:
    return a.first_ms <= b.last_ms and b.first_ms <= a.last_ms
