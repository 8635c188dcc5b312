"""``export_klines``: Parquet, freqtrade and CSV files, read back by their own readers, equal the store to the digit."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import subprocess
import zipfile
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pytest
from django.core.management import CommandError, call_command

from klines.api.rows import kline_row
from klines.binance.archive import MONTHLY, ArchiveFile, parse_checksum
from klines.binance.archive_csv import HEADER
from klines.export.archive_files import archive_bytes
from klines.export.run import export_pair
from klines.store.history import stored_between
from klines.store.records import KlineRecord
from klines.store.writes import save_klines
from tests.conftest import ReadCounter
from tests.helpers import closed_kline
from tests.test_store import _winning_plan

pytestmark = pytest.mark.django_db(transaction=True)

DECIMALS = ("open", "high", "low", "close", "volume", "quote_volume", "taker_buy_base_volume", "taker_buy_quote_volume")
HOLE = range(100, 110)  # offsets not stored
REPO = Path(__file__).resolve().parent.parent


def store(count: int = 200, symbol: str = "BTCUSDT") -> list[KlineRecord]:
    """``count`` 1m klines from 2025-11-25 10:00 UTC but the :data:`HOLE`; two with extreme digits. Returns the
    stored records."""
    klines = [closed_kline(symbol, offset) for offset in range(count) if offset not in HOLE]
    klines[1] = dataclasses.replace(klines[1], low=Decimal("0.000000000001"), volume=Decimal("0E-8"))
    klines[2] = dataclasses.replace(klines[2], quote_volume=Decimal("123456789012345678.123456789012"))
    save_klines(klines)
    return stored_between(symbol, "1m", klines[0].open_time, klines[-1].open_time, count)


def export(tmp_path: Path, fmt: str, *args: str) -> str:
    out = io.StringIO()
    call_command(
        "export_klines", "--symbols", "btcusdt", "--intervals", "1m", "--since", "2025-11-25T10:00",
        "--format", fmt, "--out", str(tmp_path), *args, stdout=out,
    )  # fmt: skip
    return out.getvalue()


def test_parquet_reads_back_in_pandas_polars_and_duckdb_as_stored(tmp_path: Path) -> None:
    records = store()
    summary = export(tmp_path, "parquet")
    path = tmp_path / "BTCUSDT-1m.parquet"
    assert f"BTCUSDT 1m: {len(records)} klines, 2025-11-25 10:00..2025-11-25 13:19 UTC -> {path}" in summary
    assert "10 klines missing in 1 holes" in summary and "2025-11-25 11:40..2025-11-25 11:49 UTC (10 klines)" in summary

    frame = pd.read_parquet(path)
    assert str(frame["open_time"].dtype).startswith("datetime64[ms, UTC]") and frame["trades"].dtype == "int64"
    assert len(frame) == len(records)
    for row, record in zip(frame.itertuples(index=False), records, strict=True):
        assert row.open_time.to_pydatetime() == record.open_time and row.close_time == record.close_time
        assert row.trades == record.trades and row.symbol == "BTCUSDT"
        for name in DECIMALS:
            assert getattr(row, name) == getattr(record, name), (name, record.open_time)

    polars = pl.read_parquet(path)
    assert polars.schema["close"] == pl.Decimal(30, 12)
    assert polars["quote_volume"].to_list() == [r.quote_volume for r in records]
    assert polars["low"].to_list() == [r.low for r in records]
    assert polars["open_time"].to_list() == [r.open_time for r in records]

    rows = duckdb.sql(f"SELECT close, trades FROM '{path}' WHERE open_time >= '2025-11-25 13:00:00+00'").fetchall()
    assert rows == [(r.close, r.trades) for r in records if r.open_time.hour == 13]


def test_parquet_row_groups_hold_a_bounded_number_of_klines_in_order(tmp_path: Path) -> None:
    records = store()
    import pyarrow.parquet as pq

    from klines.export import parquet

    result = export_pair("parquet", "BTCUSDT", "1m", records[0].open_time, records[-1].close_time, tmp_path, batch=7)
    assert result.klines == len(records)
    original, parquet.ROW_GROUP = parquet.ROW_GROUP, 50
    try:
        export_pair(
            "parquet", "BTCUSDT", "1m", records[0].open_time, records[-1].close_time, tmp_path, batch=7, force=True
        )
    finally:
        parquet.ROW_GROUP = original
    metadata = pq.ParquetFile(tmp_path / "BTCUSDT-1m.parquet").metadata
    sizes = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    assert sizes == [50, 50, 50, 40]  # 190 klines read 7 at a time, written 50 per row group
    assert pd.read_parquet(tmp_path / "BTCUSDT-1m.parquet")["close"].tolist() == [r.close for r in records]


def test_freqtrade_feather_has_freqtrades_name_and_columns_and_the_stored_values(tmp_path: Path) -> None:
    records = store()
    export(tmp_path, "freqtrade")
    path = tmp_path / "futures" / "BTC_USDT_USDT-1m-futures.feather"
    frame = pd.read_feather(path)
    assert list(frame.columns) == ["date", "open", "high", "low", "close", "volume"]
    assert str(frame["date"].dtype) == "datetime64[ms, UTC]"
    assert all(frame[c].dtype == "float64" for c in ["open", "high", "low", "close", "volume"])
    assert frame["date"].tolist() == [pd.Timestamp(r.open_time) for r in records]
    for name in ("open", "high", "low", "close", "volume"):
        assert frame[name].tolist() == [float(getattr(r, name)) for r in records]


def freqtrade_python() -> Path:
    executable = Path(os.environ.get("BINANCEWS_FREQTRADE", ".venv-freqtrade/bin/freqtrade"))
    executable = executable if executable.is_absolute() else REPO / executable
    return executable.parent / "python"


LOAD = """
import json, sys
from pathlib import Path
from freqtrade.data.history import load_pair_history
from freqtrade.enums import CandleType
frame = load_pair_history(pair="BTC/USDT:USDT", timeframe="1m", datadir=Path(sys.argv[1]),
                          candle_type=CandleType.FUTURES, data_format="feather", fill_up_missing=False)
print(json.dumps([[int(d.timestamp() * 1000), o, h, l, c, v] for d, o, h, l, c, v in frame.itertuples(index=False)]))
"""


@pytest.mark.skipif(
    not freqtrade_python().exists(),
    reason="freqtrade is not installed: BINANCEWS_FREQTRADE (default .venv-freqtrade/bin/freqtrade) is missing",
)
def test_freqtrades_own_loader_reads_the_stored_candles(tmp_path: Path) -> None:
    records = store()
    export(tmp_path, "freqtrade")
    loaded = subprocess.run(
        [str(freqtrade_python()), "-c", LOAD, str(tmp_path)], capture_output=True, text=True, timeout=120, check=True
    )
    candles = json.loads(loaded.stdout)
    expected = [
        [
            int(r.open_time.timestamp() * 1000),
            *(float(getattr(r, n)) for n in ("open", "high", "low", "close", "volume")),
        ]
        for r in records
    ]
    assert candles == expected


def test_csv_zips_hold_binances_columns_with_the_stored_digits_and_checksums(tmp_path: Path) -> None:
    records = store()
    export(tmp_path, "csv", "--until", "2025-11-26")
    day = tmp_path / "data/futures/um/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2025-11-25.zip"
    data = day.read_bytes()
    checksum = Path(str(day) + ".CHECKSUM").read_text()
    assert parse_checksum(checksum, name=day.name) == hashlib.sha256(data).hexdigest()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.namelist() == ["BTCUSDT-1m-2025-11-25.csv"]
        lines = archive.read("BTCUSDT-1m-2025-11-25.csv").decode().splitlines()
    assert lines[0] == ",".join(HEADER)
    assert lines[1:] == [",".join(map(str, kline_row(r))) for r in records]
    assert "0.000000000001" in lines[2] and "123456789012345678.123456789012" in lines[3]


def test_an_existing_file_is_kept_without_force(tmp_path: Path) -> None:
    store(20)
    export(tmp_path, "parquet")
    path = tmp_path / "BTCUSDT-1m.parquet"
    before = path.read_bytes()
    with pytest.raises(CommandError, match=f"^{path} exists; use --force to overwrite$"):
        export(tmp_path, "parquet")
    assert path.read_bytes() == before
    save_klines([closed_kline("BTCUSDT", 20)])
    assert "21 klines" in export(tmp_path, "parquet", "--force")
    assert len(pd.read_parquet(path)) == 21
    assert not list(tmp_path.glob("*.partial"))


def test_a_range_with_nothing_stored_writes_an_empty_file_and_names_the_hole(tmp_path: Path) -> None:
    summary = export(tmp_path, "parquet", "--until", "2025-11-25T11:00")
    assert "BTCUSDT 1m: 0 klines, nothing stored in range" in summary
    assert "60 klines missing in 1 holes" in summary
    assert len(pd.read_parquet(tmp_path / "BTCUSDT-1m.parquet")) == 0


def test_bad_options_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="--since: 'yesterday' is not a date"):
        call_command("export_klines", "--since", "yesterday", "--format", "parquet", "--out", str(tmp_path))
    with pytest.raises(CommandError, match="--intervals"):
        call_command(
            "export_klines", "--since", "2025-01-01", "--intervals", "7q", "--format", "parquet", "--out", str(tmp_path)
        )
    (tmp_path / "file").write_text("")
    with pytest.raises(CommandError, match="exists and is not a directory"):
        call_command("export_klines", "--since", "2025-01-01", "--format", "parquet", "--out", str(tmp_path / "file"))


def test_timestamps_are_utc_whatever_the_readers_zone(tmp_path: Path) -> None:
    records = store(5)
    export(tmp_path, "parquet")
    first = pd.read_parquet(tmp_path / "BTCUSDT-1m.parquet")["open_time"][0]
    assert first.tzname() == "UTC" and first.to_pydatetime() == records[0].open_time
    assert records[0].open_time + timedelta(minutes=1) - timedelta(milliseconds=1) == records[0].close_time


def test_every_read_of_an_export_is_answered_from_an_index(tmp_path: Path, mongo_reads: ReadCounter) -> None:
    records = store()
    mongo_reads.pipelines.clear()
    export_pair("parquet", "BTCUSDT", "1m", records[0].open_time, records[-1].close_time, tmp_path, batch=50)
    assert len(mongo_reads.pipelines) >= 4  # the batches (and the exchange gaps' read, on its own collection)
    for pipeline in [p for p in mongo_reads.pipelines if "open_time" in str(p)]:
        plan = str(_winning_plan(pipeline))
        assert "IXSCAN" in plan and "COLLSCAN" not in plan, f"{pipeline} -> {plan}"


def test_csv_has_a_monthly_zip_for_a_whole_month_and_daily_ones_else_each_as_the_shared_writer_makes_it(
    tmp_path: Path,
) -> None:
    hours = [closed_kline("BTCUSDT", offset, "1h") for offset in range(110, 134 + 744 + 5)]  # 2025-11-30..2026-01-01 4h
    save_klines(hours)
    records = stored_between("BTCUSDT", "1h", hours[0].open_time, hours[-1].open_time, len(hours))
    out = io.StringIO()
    call_command(
        "export_klines", "--symbols", "btcusdt", "--intervals", "1h", "--since", "2025-11-30", "--until",
        "2026-01-01T05:00", "--format", "csv", "--out", str(tmp_path), "--quiet", stdout=out,
    )  # fmt: skip
    base = tmp_path / "data/futures/um"
    names = sorted(str(p.relative_to(base)) for p in base.rglob("*.zip"))
    assert names == [
        "daily/klines/BTCUSDT/1h/BTCUSDT-1h-2025-11-30.zip",
        "daily/klines/BTCUSDT/1h/BTCUSDT-1h-2026-01-01.zip",
        "monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2025-12.zip",
    ]
    month = ArchiveFile(symbol="BTCUSDT", interval="1h", period=MONTHLY, start=date(2025, 12, 1))
    in_month = [r for r in records if r.open_time.month == 12]
    assert len(in_month) == 744
    assert (base / month.path.removeprefix("data/futures/um/")).read_bytes() == archive_bytes(month, [in_month])
    last_day = (base / "daily/klines/BTCUSDT/1h/BTCUSDT-1h-2026-01-01.zip").read_bytes()
    with zipfile.ZipFile(io.BytesIO(last_day)) as archive:
        assert len(archive.read("BTCUSDT-1h-2026-01-01.csv").decode().splitlines()) == 1 + 5
    assert "BTCUSDT 1h: 773 klines" in out.getvalue() and "complete" in out.getvalue()


def test_an_existing_file_of_any_pair_stops_the_export_before_anything_is_written(tmp_path: Path) -> None:
    store(20)
    store(20, "ETHUSDT")
    (tmp_path / "ETHUSDT-1m.parquet").write_bytes(b"mine")
    with pytest.raises(CommandError, match=f"^{tmp_path / 'ETHUSDT-1m.parquet'} exists; use --force to overwrite$"):
        call_command(
            "export_klines", "--symbols", "btcusdt,ethusdt", "--intervals", "1m", "--since", "2025-11-25",
            "--format", "parquet", "--out", str(tmp_path), stdout=io.StringIO(),
        )  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ETHUSDT-1m.parquet"]
    assert (tmp_path / "ETHUSDT-1m.parquet").read_bytes() == b"mine"
