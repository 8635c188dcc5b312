"""Pure: the simulated exchange's kline archive — zips and ``.CHECKSUM`` files as data.binance.vision publishes them.

Generated from the deterministic series, so an archived kline equals the
REST and stream kline of the same open time, digit for digit; the CSV and zip
are written by the shared writer (:mod:`klines.export.archive_files`). Files dated
before :data:`HEADER_SINCE` have no header row, as Binance's older files;
later ones start with it. Published: daily files for days before today,
monthly files for months before this one, nothing before the listing.
"""

from __future__ import annotations

from datetime import date

from klines.binance.archive import DAILY, ArchiveFile, checksum_text, midnight, next_month
from klines.binance.parse import datetime_to_ms
from klines.export.archive_files import csv_blocks, member_name, sha256_of, zip_chunks
from klines.simexchange.series import KlineSeries

HEADER_SINCE = date(2022, 1, 1)  # Binance's older files have no header row


def published(file: ArchiveFile, *, today: date, listed: date) -> bool:
    """Whether Binance would have this file by ``today`` for a contract listed on ``listed``."""
    if file.end <= listed:
        return False
    if file.period == DAILY:
        return file.start < today
    return next_month(file.start) <= today.replace(day=1)


def csv_text(series: KlineSeries, file: ArchiveFile, *, first_ms: int | None = None) -> str:
    """The CSV of ``file`` (from ``first_ms``, the listing, if later than the file's start)."""
    length = series.interval_ms
    start = max(datetime_to_ms(midnight(file.start)), first_ms or 0)
    first = -(-start // length)
    end = datetime_to_ms(midnight(file.end)) // length
    rows = (series.kline(file.symbol, i).rest_row() for i in range(first, end))
    return b"".join(csv_blocks([rows], header=file.start >= HEADER_SINCE)).decode()


def zip_bytes(file: ArchiveFile, text: str) -> bytes:
    """``text`` as the one CSV member of ``file``'s zip (``BTCUSDT-1m-2024-01.csv`` in ``...-2024-01.zip``)."""
    return b"".join(zip_chunks(member_name(file), [text.encode("ascii")]))


def checksum_of(file: ArchiveFile, data: bytes) -> str:
    """The ``.CHECKSUM`` body for ``data`` as ``file``."""
    return checksum_text(sha256_of([data]), file.name)
