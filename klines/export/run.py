"""Export one (symbol, interval) over ``[start, end)`` from the store to files, in bounded batches.

The klines are read with :func:`klines.store.reads.klines_in_batches` (indexed
windows, :data:`BATCH` at a time) and handed to a format's writer as they come,
so memory holds one batch and one row group, whatever the range. Each file is
written beside its final name (``NAME.partial``) and renamed when complete: an
interrupted export leaves no file that looks whole.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from klines.binance.intervals import interval_ms
from klines.binance.parse import datetime_to_ms
from klines.export import csv_zips, freqtrade, parquet
from klines.export.plan import HoleFinder, PairExport, open_ms
from klines.store.exchange_gaps import exchange_gaps
from klines.store.reads import klines_in_batches
from klines.store.records import KlineRecord

BATCH = 10_000  # klines per read (about 15 MB as records)
FORMATS = ("csv", "parquet", "freqtrade")


class Writer(Protocol):
    def write(self, records: Sequence[KlineRecord]) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


class FileExists(Exception):
    """A file the export would write exists (and ``--force`` was not given)."""


def partial(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


class SingleFile:
    """A writer of one file (Parquet, feather) into ``NAME.partial``, renamed to ``NAME`` on close."""

    def __init__(self, path: Path, make: Callable[[Path], Writer]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.inner = make(partial(path))
        self.files = [path]

    def write(self, records: Sequence[KlineRecord]) -> None:
        self.inner.write(records)

    def close(self) -> None:
        self.inner.close()
        os.replace(partial(self.path), self.path)

    def abort(self) -> None:
        self.inner.abort()
        partial(self.path).unlink(missing_ok=True)


def writer_for(
    fmt: str, symbol: str, interval: str, out: Path, *, pair: str | None, start: datetime, end: datetime
) -> tuple[list[Path], Callable[[], Writer]]:
    """The files ``fmt`` writes for the pair (to check before writing) and how to open its writer."""
    if fmt == "parquet":
        path = out / f"{symbol}-{interval}.parquet"
        return [path], lambda: SingleFile(path, parquet.ParquetOut)
    if fmt == "freqtrade":
        path = out / freqtrade.relative_path(pair or "", interval)
        return [path], lambda: SingleFile(path, freqtrade.FeatherOut)
    if fmt == "csv":
        paths = csv_zips.planned(symbol, interval, out, start, end)
        return paths, lambda: csv_zips.ZipsOut(symbol, interval, out, start, end)
    raise ValueError(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}")


def export_pair(
    fmt: str,
    symbol: str,
    interval: str,
    start: datetime,
    end: datetime,
    out: Path,
    *,
    force: bool = False,
    pair: str | None = None,
    advance: Callable[[int], None] = lambda n: None,
    batch: int = BATCH,
) -> PairExport:
    """Write the stored klines of ``[start, end)`` as ``fmt`` under ``out``; the result names what was missing.

    Raises :class:`FileExists` before reading anything if a file it would write
    exists and ``force`` is false.
    """
    symbol = symbol.upper()
    length = interval_ms(interval)
    paths, make = writer_for(fmt, symbol, interval, out, pair=pair, start=start, end=end)
    taken = [p for p in paths if p.exists()]
    if taken and not force:
        shown = ", ".join(str(p) for p in taken[:3]) + (f" and {len(taken) - 3} more" if len(taken) > 3 else "")
        raise FileExists(f"{shown} exists; use --force to overwrite")
    result = PairExport(symbol=symbol, interval=interval, start=start, end=end)
    known = [(datetime_to_ms(a), datetime_to_ms(b)) for a, b in exchange_gaps(symbol, interval)]
    holes = HoleFinder(datetime_to_ms(start), datetime_to_ms(end), length, known)
    writer = make()
    try:
        for records in klines_in_batches(symbol, interval, start, end - timedelta(milliseconds=1), batch):
            writer.write(records)
            times = [r.open_time for r in records]
            holes.feed(open_ms(times))
            result.seen(times)
            advance(len(records))
    except BaseException:
        writer.abort()
        raise
    writer.close()
    result.files = list(getattr(writer, "files", paths))
    result.holes = holes.finish()
    return result
