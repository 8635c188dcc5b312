"""Pure: whether the mirror serves an archive file — a past, complete day or month of a recorded pair — or why not.

A file is served when every interval of its day or month is stored, or is
missing only where the exchange had no klines (a recorded exchange gap:
Binance's own files simply omit those minutes). A hole the repair may still
fill, a day or month not over yet, or a pair not recorded is refused with a
reason; the mirror answers those 404 with ``{"code": 404, "msg": reason}``.
Only intervals that divide a day are served (1m .. 1d): their open times are
the same in every file layout.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date, datetime

from klines.binance.archive import ArchiveFile, midnight
from klines.binance.intervals import INTERVAL_SECONDS
from klines.binance.parse import datetime_to_ms

DAY_MS = 86_400_000


@dataclass(frozen=True)
class Refused(Exception):
    """Why a file is not served (a 404 with this reason)."""

    reason: str


def check_request(file: ArchiveFile, *, symbols: Collection[str], intervals: Collection[str], today: date) -> None:
    """What can be refused before reading the store: an unrecorded pair or interval, a period not over yet."""
    if file.symbol not in symbols:
        raise Refused(f"{file.symbol} is not recorded here")
    if file.interval not in intervals or file.interval not in INTERVAL_SECONDS:
        raise Refused(f"interval {file.interval} is not recorded here")
    if DAY_MS % (INTERVAL_SECONDS[file.interval] * 1000):
        raise Refused(f"interval {file.interval} has no archive files here (only intervals that divide a day)")
    if file.end > today:
        raise Refused(f"{file.name}: its {'day' if len(file.label) == 10 else 'month'} is not over yet")


def span_ms(file: ArchiveFile) -> tuple[int, int]:
    """``[first, end)`` open times of ``file``'s klines, in milliseconds."""
    return datetime_to_ms(midnight(file.start)), datetime_to_ms(midnight(file.end))


def slots(first_ms: int, end_ms: int, step_ms: int) -> int:
    """How many open times ``k * step_ms`` lie in ``[first_ms, end_ms)``."""
    return max(0, -(-end_ms // step_ms) - -(-first_ms // step_ms))


def gap_slots(gaps: Iterable[tuple[datetime, datetime]], file: ArchiveFile) -> int:
    """How many of ``file``'s open times fall inside the exchange's gaps (``(first, last)`` open times, inclusive)."""
    first, end = span_ms(file)
    step = INTERVAL_SECONDS[file.interval] * 1000
    total = 0
    for gap_first, gap_last in gaps:
        total += slots(max(first, datetime_to_ms(gap_first)), min(end, datetime_to_ms(gap_last) + 1), step)
    return total


def check_complete(file: ArchiveFile, *, stored: int, exchange_gaps: int) -> None:
    """Refuse ``file`` unless its stored klines and the exchange's gaps cover every interval of it."""
    first, end = span_ms(file)
    expected = slots(first, end, INTERVAL_SECONDS[file.interval] * 1000)
    if stored == 0:
        raise Refused(f"{file.name}: no klines of it are stored")
    if stored + exchange_gaps < expected:
        missing = expected - stored - exchange_gaps
        raise Refused(f"{file.name}: incomplete, {missing} of {expected} klines missing (a hole not yet filled)")
