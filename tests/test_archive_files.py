"""The shared archive writer, pure: deterministic streamed zips that zipfile, ``unzip`` and the archive reader read."""

from __future__ import annotations

import io
import shutil
import subprocess
import zipfile
from datetime import date

import pytest

from klines.api.rows import kline_row
from klines.binance.archive import DAILY, MONTHLY, ArchiveFile, parse_checksum
from klines.binance.archive_csv import HEADER, read_klines
from klines.export.archive_files import archive_bytes, archive_checksum, archive_chunks, csv_line, sha256_of
from klines.simexchange.archive import csv_text, zip_bytes
from klines.simexchange.series import KlineSeries

DAY = ArchiveFile(symbol="BTCUSDT", interval="1m", period=DAILY, start=date(2024, 3, 5))
MONTH = ArchiveFile(symbol="BTCUSDT", interval="1m", period=MONTHLY, start=date(2024, 2, 1))


def _rows(file: ArchiveFile) -> list[list[object]]:
    series = KlineSeries(interval="1m", interval_ms=60_000)
    first = int(date_ms(file.start) // 60_000)
    end = int(date_ms(file.end) // 60_000)
    return [series.kline(file.symbol, i).rest_row() for i in range(first, end)]


def date_ms(day: date) -> int:
    return (day - date(1970, 1, 1)).days * 86_400_000


def test_the_same_rows_give_the_same_bytes_whatever_the_batching_and_the_clock() -> None:
    rows = _rows(DAY)
    whole = archive_bytes(DAY, [rows])
    batched = archive_bytes(DAY, [rows[i : i + 100] for i in range(0, len(rows), 100)])
    assert whole == batched
    info = zipfile.ZipFile(io.BytesIO(whole)).infolist()
    assert [(i.filename, i.date_time) for i in info] == [("BTCUSDT-1m-2024-03-05.csv", (1980, 1, 1, 0, 0, 0))]


def test_zipfile_reads_binances_header_and_the_rows_digit_for_digit() -> None:
    rows = _rows(DAY)
    data = archive_bytes(DAY, [rows])
    text = zipfile.ZipFile(io.BytesIO(data)).read("BTCUSDT-1m-2024-03-05.csv").decode()
    lines = text.splitlines()
    assert lines[0] == ",".join(HEADER)
    assert lines[1:] == [csv_line(row).rstrip("\n") for row in rows]
    assert len(lines) == 1 + 1440
    klines = [k for batch in read_klines(io.BytesIO(data), DAY) for k in batch]
    assert [kline_row(k) for k in klines] == [[*row[:11], "0"] for row in rows]


def test_a_month_streams_in_bounded_chunks() -> None:
    rows = _rows(MONTH)
    chunks = list(archive_chunks(MONTH, [rows[i : i + 1500] for i in range(0, len(rows), 1500)]))
    assert len(chunks) > 10
    assert max(map(len, chunks)) < 1024 * 1024
    assert sha256_of(chunks) == sha256_of([b"".join(chunks)])


def test_the_checksum_is_binances_format_and_matches_the_bytes() -> None:
    rows = _rows(DAY)
    text = archive_checksum(DAY, [rows])
    assert text.endswith("  BTCUSDT-1m-2024-03-05.zip\n")
    assert parse_checksum(text, name=DAY.name) == sha256_of([archive_bytes(DAY, [rows])])


def test_the_simulator_writes_with_the_shared_writer() -> None:
    series = KlineSeries(interval="1m", interval_ms=60_000)
    assert zip_bytes(DAY, csv_text(series, DAY)) == archive_bytes(DAY, [_rows(DAY)])


@pytest.mark.skipif(shutil.which("unzip") is None, reason="unzip is not installed")
def test_unzip_reads_it(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / DAY.name
    path.write_bytes(archive_bytes(DAY, [_rows(DAY)]))
    result = subprocess.run(["unzip", "-t", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
