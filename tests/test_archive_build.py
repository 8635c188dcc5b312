"""The mirror's archive files built in this process from a real SecantusDB: a month of 5m in bounded chunks and
flat memory, byte for byte the simulated exchange's file of the same klines (a month of 1m: the benchmark)."""

from __future__ import annotations

import tracemalloc
from datetime import date

import pytest

from klines.api.archive import digest_of, file_chunks, stored_count
from klines.api.archive_check import Refused
from klines.binance.archive import MONTHLY, ArchiveFile
from klines.binance.parse import parse_rest_row
from klines.export.archive_files import sha256_of
from klines.simexchange.archive import csv_text, zip_bytes
from klines.simexchange.series import KlineSeries
from klines.store.writes import insert_new

pytestmark = pytest.mark.django_db(transaction=True)

MONTH = ArchiveFile(symbol="BTCUSDT", interval="5m", period=MONTHLY, start=date(2024, 2, 1))  # 8,352 klines
SERIES = KlineSeries(interval="5m", interval_ms=300_000)
FIRST = 1_706_745_600_000 // 300_000  # 2024-02-01 00:00 UTC
COUNT = 29 * 288


def store_month(skip: int | None = None) -> None:
    for start in range(FIRST, FIRST + COUNT, 5000):
        rows = [SERIES.kline("BTCUSDT", i).rest_row() for i in range(start, min(start + 5000, FIRST + COUNT))]
        klines = [parse_rest_row(r, symbol="BTCUSDT", interval="5m") for r in rows if r[0] // 300_000 != skip]
        assert len(insert_new(klines)[0]) == len(klines)


def test_a_month_is_streamed_in_bounded_chunks_and_equals_the_simulators_file() -> None:
    store_month()
    assert stored_count(MONTH) == COUNT
    tracemalloc.start()
    try:
        sizes = []
        chunks = file_chunks(MONTH)
        digest = sha256_of(c for c in chunks if not sizes.append(len(c)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sum(sizes) > 300_000 and len(sizes) >= 4, "hundreds of KB, sent as several chunks"
    assert max(sizes) < 256 * 1024
    # Streamed: ~8 MB (a batch of 1,500 read, its CSV, zlib); built whole, the month's documents and klines are ~25 MB.
    assert peak < 12 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB: the month must not be built whole"
    assert digest == sha256_of([zip_bytes(MONTH, csv_text(SERIES, MONTH))])
    assert digest_of(MONTH) == (digest, sum(sizes))


def test_a_month_with_one_kline_missing_is_refused() -> None:
    store_month(skip=FIRST + 777)
    with pytest.raises(Refused, match="incomplete, 1 of 8352 klines missing"):
        stored_count(MONTH)
