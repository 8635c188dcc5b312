"""CSV: Binance's public-archive layout, ``data/futures/um/{monthly,daily}/klines/SYMBOL/INTERVAL/NAME.zip``.

Whole months of the range are monthly files, the other days daily ones (as
:func:`klines.binance.archive.archive_files` plans them); each zip is made by
the shared deterministic writer (:mod:`klines.export.archive_files`: Binance's
columns and header row, digits as stored, fixed zip dates, so the same klines
give the same bytes as the mirror's ``/data/...`` files) and has its
``.CHECKSUM`` (SHA-256) beside it. Only one file's CSV text is held (a month of
1m is ~4.5 MB); the zip is streamed to disk and hashed as it is written. A
file whose range holds no stored kline is not written.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from klines.binance.archive import CHECKSUM_SUFFIX, ArchiveFile, archive_files, checksum_text, midnight
from klines.export.archive_files import csv_blocks, member_name, zip_chunks
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


def write_zip(file: ArchiveFile, blocks: list[bytes], out: Path) -> Path:
    """``file``'s zip (these CSV blocks after the header row) and its ``.CHECKSUM`` under ``out``."""
    path = out / file.path
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".partial")
    digest = hashlib.sha256()
    with part.open("wb") as sink:
        for chunk in zip_chunks(member_name(file), [*csv_blocks([], header=True), *blocks]):
            digest.update(chunk)
            sink.write(chunk)
    checksum = Path(str(path) + CHECKSUM_SUFFIX)
    checksum_part = checksum.with_name(checksum.name + ".partial")
    checksum_part.write_text(checksum_text(digest.hexdigest(), file.name))
    os.replace(part, path)
    os.replace(checksum_part, checksum)
    return path


class ZipsOut:
    """Writes each archive file of the range once its klines have all been read (records come oldest first)."""

    def __init__(self, symbol: str, interval: str, out: Path, start: datetime, end: datetime) -> None:
        self.out = out
        self.pending = plan(symbol, interval, start, end)
        self.blocks: list[bytes] = []  # the current file's CSV, one block per batch
        self.files: list[Path] = []

    def write(self, records: Sequence[KlineRecord]) -> None:
        first = 0
        for i, record in enumerate(records):
            if self.pending and record.open_time >= midnight(self.pending[0].end):
                self.blocks.extend(csv_blocks([records[first:i]], header=False))
                first = i
                while self.pending and record.open_time >= midnight(self.pending[0].end):
                    self._finish()
        self.blocks.extend(csv_blocks([records[first:]], header=False))

    def _finish(self) -> None:
        file = self.pending.pop(0)
        blocks, self.blocks = self.blocks, []
        if blocks:
            self.files.append(write_zip(file, blocks, self.out))

    def close(self) -> None:
        while self.pending:
            self._finish()

    def abort(self) -> None:
        """Keep the files already complete (each whole, with its checksum); drop the one being built."""
        self.blocks = []
