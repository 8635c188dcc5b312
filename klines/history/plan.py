"""Pure: what ``backfill_klines`` fetches for one (symbol, interval), and what it reports.

A run covers ``[start, end)``: from ``--since`` (not before the listing), to
``--until`` or the last closed kline. Its *units* are the archive files that
cover the range (:func:`klines.binance.archive.archive_files`) and then REST
chunks of one page each. A unit whose klines are all stored is skipped: the
store is the progress record, so a run that was interrupted continues where
it stopped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from klines.binance.archive import ArchiveFile, midnight
from klines.binance.parse import ClosedKline, datetime_to_ms, ms_to_datetime

PAGE = 1500  # klines per REST page (Binance's maximum; weight 10)
LISTED = 10  # differing klines listed in the summary (all are counted)
FIELDS = tuple(f for f in ClosedKline.__dataclass_fields__ if f not in ("symbol", "interval", "open_time"))


def align_up(ms: int, interval_ms: int) -> int:
    return -(-ms // interval_ms) * interval_ms


def run_range(
    since: datetime, until: datetime | None, *, onboard_ms: int, server_ms: int, interval_ms: int
) -> tuple[datetime, datetime]:
    """``[start, end)`` of open times to fill: not before the listing, only klines closed on the exchange's clock."""
    start = align_up(max(datetime_to_ms(since), onboard_ms), interval_ms)
    closed_end = server_ms // interval_ms * interval_ms  # the kline opened before this has closed
    end = closed_end if until is None else min(closed_end, align_up(datetime_to_ms(until), interval_ms))
    return ms_to_datetime(start), ms_to_datetime(max(start, end))


def expected(since: datetime, until: datetime, interval_ms: int) -> int:
    """How many klines open in ``[since, until)`` (both on interval boundaries)."""
    return max(0, (datetime_to_ms(until) - align_up(datetime_to_ms(since), interval_ms)) // interval_ms)


def file_range(file: ArchiveFile, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The part of ``[start, end)`` that ``file`` covers."""
    return max(start, midnight(file.start)), min(end, midnight(file.end))


def rest_chunks(
    start: datetime, end: datetime, interval_ms: int, page: int = PAGE
) -> Iterator[tuple[datetime, datetime]]:
    """``[start, end)`` in pieces of at most ``page`` klines."""
    first, last = datetime_to_ms(start), datetime_to_ms(end)
    for chunk in range(first, last, page * interval_ms):
        yield ms_to_datetime(chunk), ms_to_datetime(min(last, chunk + page * interval_ms))


def differences(stored: object, kline: ClosedKline) -> list[str]:
    """The fields whose stored text differs from ``kline``'s (digits as written: ``1.0`` is not ``1.00``)."""
    return [name for name in FIELDS if str(getattr(stored, name)) != str(getattr(kline, name))]


@dataclass
class PairSummary:
    """What a run did for one (symbol, interval)."""

    symbol: str
    interval: str
    start: datetime
    end: datetime
    from_archive: int = 0
    from_rest: int = 0
    already: int = 0  # klines the store held (skipped units, or rows already stored)
    differing: int = 0
    differing_listed: list[str] = field(default_factory=list)
    bad_files: list[str] = field(default_factory=list)  # "NAME: reason" (fell back to REST)
    missing: list[tuple[str, int, str]] = field(default_factory=list)  # (what, klines missing, reason)
    oldest: datetime | None = None
    newest: datetime | None = None

    def differ(self, kline: ClosedKline, fields: list[str], stored: object) -> None:
        self.differing += 1
        if len(self.differing_listed) < LISTED:
            shown = ", ".join(f"{n} stored {getattr(stored, n)} archive {getattr(kline, n)}" for n in fields)
            self.differing_listed.append(f"{kline.open_time:%Y-%m-%d %H:%M}: {shown}")

    def lines(self) -> list[str]:
        span = "nothing stored in range"
        if self.oldest is not None and self.newest is not None:
            span = f"{self.oldest:%Y-%m-%d %H:%M}..{self.newest:%Y-%m-%d %H:%M} UTC"
        head = (
            f"{self.symbol} {self.interval}: {span}; added {self.from_archive} from archive, "
            f"{self.from_rest} from REST, {self.already} already stored"
        )
        lines = [head]
        if self.bad_files:
            lines.extend(f"  bad file, fetched from REST instead: {bad}" for bad in self.bad_files)
        if self.differing:
            lines.append(f"  {self.differing} stored klines differ from the exchange's (kept, not overwritten):")
            lines.extend(f"    {entry}" for entry in self.differing_listed)
            if self.differing > len(self.differing_listed):
                lines.append(f"    and {self.differing - len(self.differing_listed)} more")
        total = sum(count for _, count, _ in self.missing)
        if total:
            lines.append(f"  still missing {total} klines:")
            lines.extend(f"    {what}: {count} ({reason})" for what, count, reason in self.missing[:LISTED])
            if len(self.missing) > LISTED:
                lines.append(f"    and {len(self.missing) - LISTED} more ranges")
        else:
            first, end = f"{self.start:%Y-%m-%d %H:%M}", f"{self.end:%Y-%m-%d %H:%M}"
            lines.append(f"  complete: every kline from {first} to before {end} UTC")
        return lines
