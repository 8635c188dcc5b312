"""Fill one (symbol, interval) over a range: archive files first, REST pages for the rest and for bad files.

Every batch is inserted first (:func:`klines.store.writes.insert_new`, one
unordered ``insert_many`` guarded by the unique key on symbol, interval, open
time), so overlapping runs, a re-run or a running ingest store nothing twice;
only the klines whose key was already taken are read back and compared. A
stored kline whose values differ from the exchange's is reported in the
summary and kept as it is. A unit whose sources gave every kline it should
hold is complete without counting it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

import httpx

from klines.backoff import Backoff
from klines.binance.archive import MONTHLY, ArchiveFile, ChecksumError, archive_files, midnight
from klines.binance.archive_csv import ArchiveError, read_klines
from klines.binance.intervals import interval_ms
from klines.binance.parse import ClosedKline, MalformedMessage, datetime_to_ms, ms_to_datetime, parse_rest_row
from klines.binance.rest import BinanceRest, RestError
from klines.history.download import Missing, download
from klines.history.plan import PAGE, PairSummary, differences, expected, file_range, rest_chunks, run_range
from klines.ingest.backfill import closed_before, kline_weight
from klines.store.history import count_between, stored_at, stored_between
from klines.store.reads import newest_open_time
from klines.store.writes import insert_new

logger = logging.getLogger(__name__)

REST_ATTEMPTS = 4
REST_RETRY = Backoff(initial=1.0, maximum=10.0)
NO_TRADING = "the exchange has no kline there (no trading)"
T = TypeVar("T")


def prefetched(items: Iterable[T]) -> Iterator[T]:
    """``items`` in order, the next one made in a thread while the caller works on this one (its errors re-raised).

    Parsing the next 10,000 rows of a zip then overlaps the database's insert of
    these (pymongo waits for the server without the GIL).
    """
    source = iter(items)
    done = object()
    with ThreadPoolExecutor(1, thread_name_prefix="archive-read") as pool:
        upcoming = pool.submit(next, source, done)
        while (item := upcoming.result()) is not done:
            upcoming = pool.submit(next, source, done)
            yield item  # type: ignore[misc]


@dataclass(frozen=True, kw_only=True)
class Sources:
    """Where klines come from: the REST client (paced), the archive's base URL, and a download directory."""

    rest: BinanceRest
    archive_url: str
    client: httpx.Client
    directory: Path


class PairBackfill:
    """One (symbol, interval): call :meth:`run` once; ``advance(n)`` is told of every ``n`` klines dealt with."""

    def __init__(
        self,
        symbol: str,
        interval: str,
        *,
        sources: Sources,
        server_ms: int,
        advance: Callable[[int], None] = lambda n: None,
        note: Callable[[str], None] = lambda text: None,
    ) -> None:
        self.symbol = symbol.upper()
        self.interval = interval
        self.interval_ms = interval_ms(interval)
        self.sources = sources
        self.server_ms = server_ms
        self.advance = advance
        self.note = note
        self.seen: set[datetime] = set()  # open times the sources gave for the current unit

    def plan(self, since: datetime, until: datetime | None, *, onboard_ms: int) -> tuple[datetime, datetime]:
        return run_range(since, until, onboard_ms=onboard_ms, server_ms=self.server_ms, interval_ms=self.interval_ms)

    def run(self, start: datetime, end: datetime) -> PairSummary:
        """Fill ``[start, end)`` (from :meth:`plan`); the summary says what came from where and what is missing."""
        summary = PairSummary(symbol=self.symbol, interval=self.interval, start=start, end=end)
        today = ms_to_datetime(self.server_ms).date()
        files = archive_files(self.symbol, self.interval, since=start, until=end, today=today)
        pending = list(files)
        while pending:
            file = pending.pop(0)
            low, high = file_range(file, start, end)
            if low < high and self._unfinished(low, high, summary):
                days = self._from_archive(file, low, high, summary)
                pending[:0] = days
        rest_from = max(start, min(end, midnight(files[-1].end))) if files else start
        for low, high in rest_chunks(rest_from, end, self.interval_ms):
            if self._unfinished(low, high, summary):
                before = summary.from_rest
                reason = self._from_rest(low, high, summary)
                span = f"{low:%Y-%m-%d %H:%M}..{high:%Y-%m-%d %H:%M}"
                self.note(f"REST {span}: {summary.from_rest - before} klines added")
                self._missing(span, low, high, reason, summary)
        if start < end and not summary.missing:  # complete: no range read (each reads every kline on SecantusDB)
            summary.oldest, summary.newest = start, end - timedelta(milliseconds=self.interval_ms)
            return summary
        first = stored_between(self.symbol, self.interval, start, end - timedelta(milliseconds=1), 1)
        summary.oldest = first[0].open_time if first else None
        summary.newest = newest_open_time(self.symbol, self.interval, before=end) if first else None
        return summary

    # -- units -----------------------------------------------------------------------
    def _unfinished(self, low: datetime, high: datetime, summary: PairSummary) -> bool:
        """Whether ``[low, high)`` lacks klines; when it does not, the unit is skipped (a resumed run)."""
        self.seen = set()
        want = expected(low, high, self.interval_ms)
        have = count_between(self.symbol, self.interval, low, high)
        if have < want:
            return True
        summary.already += have
        self.advance(want)
        return False

    def _from_archive(
        self, file: ArchiveFile, low: datetime, high: datetime, summary: PairSummary
    ) -> list[ArchiveFile]:
        """Store ``file``'s klines in ``[low, high)``; a missing monthly file gives its days to try instead."""
        path = None
        reason = None
        try:
            path = download(self.sources.client, self.sources.archive_url, file, self.sources.directory)
            before = summary.from_archive
            for batch in prefetched(read_klines(path, file)):
                self._store([k for k in batch if low <= k.open_time < high], summary, archive=True)
            self.note(f"{file.name}: {summary.from_archive - before} klines added from the archive")
        except Missing as exc:
            if file.period == MONTHLY:
                self.note(f"{exc}; trying its daily files")
                return file.days()
            reason = f"{exc}; REST: " + (self._from_rest_range(low, high, summary) or "refetched")
        except (ChecksumError, ArchiveError) as exc:
            summary.bad_files.append(str(exc))
            self.note(f"bad file {exc}; fetching its range from REST")
            reason = f"bad file; REST: {self._from_rest_range(low, high, summary) or 'refetched'}"
        finally:
            if path is not None:
                path.unlink(missing_ok=True)
        self._missing(file.name, low, high, reason, summary)
        return []

    def _from_rest_range(self, low: datetime, high: datetime, summary: PairSummary) -> str | None:
        errors = [self._from_rest(a, b, summary) for a, b in rest_chunks(low, high, self.interval_ms)]
        return next((e for e in errors if e), None)

    def _from_rest(self, low: datetime, high: datetime, summary: PairSummary) -> str | None:
        """Store the klines of ``[low, high)`` (one page) from ``/fapi/v1/klines``; the error text if REST refused."""
        params = {
            "symbol": self.symbol,
            "interval": self.interval,
            "startTime": datetime_to_ms(low),
            "endTime": datetime_to_ms(high) - 1,
            "limit": PAGE,
        }
        for attempt in range(REST_ATTEMPTS):
            try:
                rows = self.sources.rest.get("/fapi/v1/klines", params, weight=kline_weight(PAGE))
                break
            except RestError as exc:
                if attempt + 1 == REST_ATTEMPTS:
                    return f"REST refused: {exc}"
                time.sleep(REST_RETRY.delay(attempt))
        if not isinstance(rows, list):
            return f"REST answered {str(rows)[:100]}"
        try:
            klines = [parse_rest_row(row, symbol=self.symbol, interval=self.interval) for row in rows]
        except MalformedMessage as exc:
            return f"REST row does not parse: {exc}"
        closed = [k for k in closed_before(klines, self.server_ms) if low <= k.open_time < high]
        self._store(closed, summary)
        return None

    def _missing(self, what: str, low: datetime, high: datetime, reason: str | None, summary: PairSummary) -> None:
        want = expected(low, high, self.interval_ms)
        if len(self.seen) >= want:  # the sources gave every kline of the unit, and each is stored now
            return
        lacking = want - count_between(self.symbol, self.interval, low, high)
        if lacking > 0:
            summary.missing.append((what, lacking, reason or NO_TRADING))

    # -- the write ---------------------------------------------------------------------
    def _store(self, klines: list[ClosedKline], summary: PairSummary, *, archive: bool = False) -> None:
        """Store the klines not stored yet; count the stored ones that differ (kept as they are).

        Insert first; read back only the klines whose key was taken (a resumed
        run, the ingest, another run) and compare those.
        """
        if not klines:
            return
        klines = list({k.open_time: k for k in klines}.values())
        self.seen.update(k.open_time for k in klines)
        added, taken = insert_new(klines)
        stored = (
            {r.open_time: r for r in stored_at(self.symbol, self.interval, [k.open_time for k in taken])}
            if taken
            else {}
        )
        for kline in taken:
            record = stored.get(kline.open_time)
            if record is not None and (fields := differences(record, kline)):
                summary.differ(kline, fields, record)
            else:
                summary.already += 1
        if archive:
            summary.from_archive += len(added)
        else:
            summary.from_rest += len(added)
        self.advance(len(klines))
