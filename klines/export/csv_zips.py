"""CSV: Binance's public-archive layout, ``data/futures/um/{monthly,daily}/klines/SYMBOL/INTERVAL/NAME.zip``.

Whole months of the range are monthly files, the other days daily ones (as
:func:`klines.binance.archive.archive_files` plans them); each zip holds one
CSV with Binance's header row and columns, digits as stored, and has its
``.CHECKSUM`` (SHA-256) beside it. A file is built from one month's klines at
most (a month of 1m is ~4.5 MB of text) and written when its last kline has
been read; a file of a range with no stored kline is not written.

The zips are made by the simulated exchange's archive writer
(:mod:`klines.simexchange.archive`) until the shared deterministic writer lands.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from klines.api.rows import kline_row
from klines.binance.archive import CHECKSUM_SUFFIX, ArchiveFile, archive_files, midnight
from klines.binance.archive_csv import HEADER
from klines.simexchange.archive import checksum_of, zip_bytes
from klines.store.records import KlineRecord


def plan(symbol: str, interval: str, start: datetime, end: datetime) -> list[ArchiveFile]:
    """The archive files covering ``[start, end)``: monthly for whole months, daily for the rest."""
    after = (end - timedelta(microseconds=1)).date() + timedelta(days=62)  # every file counts as published
    return archive_files(symbol, interval, since=start, until=end, today=after)


def planned(symbol: str, interval: str, out: Path, start: datetime, end: datetime) -> list[Path]:
    """Every zip and checksum file the export may write under ``out``."""
    paths = []
    for file in plan(symbol, interval, start, end):
        paths += [out / file.path, out / (file.path + CHECKSUM_SUFFIX)]
    return paths


def csv_line(record: KlineRecord) -> str:
    return ",".join(map(str, kline_row(record)))


class ZipsOut:
    """Writes each archive file of the range once its klines have all been read (records come oldest first)."""

    def __init__(self, symbol: str, interval: str, out: Path, start: datetime, end: datetime) -> None:
        self.out = out
        self.pending = plan(symbol, interval, start, end)
        self.lines: list[str] = []
        self.files: list[Path] = []

    def write(self, records: Sequence[KlineRecord]) -> None:
        for record in records:
            while self.pending and record.open_time >= midnight(self.pending[0].end):
                self._finish()
            self.lines.append(csv_line(record))

    def _finish(self) -> None:
        file = self.pending.pop(0)
        lines, self.lines = self.lines, []
        if not lines:
            return
        data = zip_bytes(file, "\n".join([",".join(HEADER), *lines]) + "\n")
        path = self.out / file.path
        path.parent.mkdir(parents=True, exist_ok=True)
        for target, body in ((path, data), (Path(str(path) + CHECKSUM_SUFFIX), checksum_of(file, data).encode())):
            part = target.with_name(target.name + ".partial")
            part.write_bytes(body)
            os.replace(part, target)
        self.files.append(path)

    def close(self) -> None:
        while self.pending:
            self._finish()

    def abort(self) -> None:
        """Keep the files already complete (each is whole and checked); drop the one being built."""
        self.lines = []
