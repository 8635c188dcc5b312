"""Binance's kline archive, pure: file layout and plan, ``.CHECKSUM``, both CSV variants, time unit, decimals."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, date, datetime

import pytest

from klines.binance.archive import ArchiveFile, ChecksumError, archive_files, parse_checksum, parse_path
from klines.binance.archive_csv import ArchiveError, decimal_text, read_klines
from klines.binance.parse import parse_rest_row
from klines.simexchange.archive import csv_text, published, zip_bytes
from klines.simexchange.series import KlineSeries

# A real row: BTCUSDT 1m 2025-01-08 15:55 UTC as data.binance.vision's futures CSV has it. Futures
# REST writes BTCUSDT in the same form: 2 price places, 3 for the base volume, 5 for the quote
# volume, trailing zeros kept (e.g. open "25896.50", volume "64.528", quoteVolume "1670968.77760"
# for 2023-08-19 06:30, as quoted in ccxt/binance-api-node#642). REST_ROW is that form of this kline.
ARCHIVE_ROW = (
    "1736351700000,95261.80,95291.60,95196.20,95223.10,180.760,1736351759999,17214864.01220,3401,124.045,"
    "11813167.63560,0"
)
REST_ROW = [
    1736351700000,
    "95261.80",
    "95291.60",
    "95196.20",
    "95223.10",
    "180.760",
    1736351759999,
    "17214864.01220",
    3401,
    "124.045",
    "11813167.63560",
    "0",
]
HEADER = (
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore"
)
DAY = ArchiveFile(symbol="BTCUSDT", interval="1m", period="daily", start=date(2025, 1, 8))


def zipped(text: str, file: ArchiveFile = DAY) -> io.BytesIO:
    return io.BytesIO(zip_bytes(file, text))


def klines(text: str, file: ArchiveFile = DAY, **options: int) -> list:
    return [k for batch in read_klines(zipped(text, file), file, **options) for k in batch]


def test_a_real_archive_row_is_stored_as_the_rest_row_of_the_same_kline_digit_for_digit() -> None:
    (from_archive,) = klines(ARCHIVE_ROW + "\n")
    from_rest = parse_rest_row(REST_ROW, symbol="BTCUSDT", interval="1m")
    assert from_archive == from_rest
    assert [str(getattr(from_archive, f)) for f in ("open", "volume", "quote_volume")] == [
        "95261.80",
        "180.760",
        "17214864.01220",
    ]


def test_decimal_text_keeps_the_digits_as_written_and_writes_exponents_out() -> None:
    assert decimal_text("0.01000000") == "0.01000000"
    assert decimal_text(" 95261.80 ") == "95261.80"
    assert decimal_text("1E-8") == "0.00000001"
    assert decimal_text("1.50e+3") == "1500"


def test_files_with_and_without_a_header_row_give_the_same_klines() -> None:
    body = ARCHIVE_ROW + "\n"
    assert klines(HEADER + "\n" + body) == klines(body)


def test_the_simulators_older_files_have_no_header_and_newer_ones_do() -> None:
    series = KlineSeries(interval="1h", interval_ms=3_600_000)
    old = ArchiveFile(symbol="BTCUSDT", interval="1h", period="daily", start=date(2021, 12, 31))
    new = ArchiveFile(symbol="BTCUSDT", interval="1h", period="daily", start=date(2022, 1, 1))
    assert not csv_text(series, old).startswith("open_time")
    assert csv_text(series, new).startswith(HEADER + "\n")
    both = klines(csv_text(series, old), old) + klines(csv_text(series, new), new)
    first = both[0].open_time.timestamp() // 3600
    truth = [
        parse_rest_row(series.kline("BTCUSDT", int(first) + i).rest_row(), symbol="BTCUSDT", interval="1h")
        for i in range(48)
    ]
    assert both == truth


@pytest.mark.parametrize(("open_time", "unit"), [("1736351700000000", "microseconds"), ("1736351700", "seconds")])
def test_a_file_whose_times_are_not_milliseconds_is_refused(open_time: str, unit: str) -> None:
    row = ARCHIVE_ROW.replace("1736351700000", open_time, 1)
    with pytest.raises(ArchiveError, match=f"is in {unit}, not milliseconds; refusing the file"):
        klines(row + "\n")


def test_a_row_of_another_day_is_refused() -> None:
    other = ArchiveFile(symbol="BTCUSDT", interval="1m", period="daily", start=date(2025, 1, 9))
    with pytest.raises(ArchiveError, match="outside the file's dates"):
        klines(ARCHIVE_ROW + "\n", other)


def test_a_row_that_does_not_parse_names_the_file_and_line() -> None:
    with pytest.raises(ArchiveError, match=r"BTCUSDT-1m-2025-01-08.zip line 3: .*close"):
        klines(HEADER + "\n" + ARCHIVE_ROW + "\n" + ARCHIVE_ROW.replace("95223.10", "n/a") + "\n")


def test_a_truncated_zip_is_refused_in_one_line() -> None:
    data = zip_bytes(DAY, ARCHIVE_ROW + "\n")
    with pytest.raises(ArchiveError, match="BTCUSDT-1m-2025-01-08.zip: corrupt zip") as caught:
        list(read_klines(io.BytesIO(data[: len(data) - 30]), DAY))
    assert "\n" not in str(caught.value)


def test_a_zip_with_a_damaged_member_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("BTCUSDT-1m-2025-01-08.csv", (ARCHIVE_ROW + "\n") * 200)
    data = bytearray(buffer.getvalue())
    data[60:70] = b"\xff" * 10  # inside the compressed member: CRC or inflate fails
    with pytest.raises(ArchiveError, match="corrupt zip"):
        list(read_klines(io.BytesIO(bytes(data)), DAY))


def test_rows_stream_in_bounded_batches() -> None:
    series = KlineSeries(interval="1m", interval_ms=60_000)
    text = csv_text(series, DAY)
    sizes = [len(batch) for batch in read_klines(zipped(text), DAY, batch=500)]
    assert sizes == [500, 500, 440]


def test_checksum_lines_are_read_and_checked() -> None:
    digest = "ab" * 32
    assert parse_checksum(f"{digest.upper()}  {DAY.name}\n", name=DAY.name) == digest
    with pytest.raises(ChecksumError, match="names another file"):
        parse_checksum(f"{digest}  ETHUSDT-1m-2025-01-08.zip\n", name=DAY.name)
    with pytest.raises(ChecksumError, match=r"is not '<sha256>  <file name>'"):
        parse_checksum("<html>404</html>", name=DAY.name)


def test_the_layout_is_binances() -> None:
    month = ArchiveFile(symbol="BTCUSDT", interval="1m", period="monthly", start=date(2024, 1, 1))
    assert month.url("https://data.binance.vision") == (
        "https://data.binance.vision/data/futures/um/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01.zip"
    )
    assert DAY.checksum_url("http://x/") == (
        "http://x/data/futures/um/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2025-01-08.zip.CHECKSUM"
    )
    assert parse_path("/" + month.path) == (month, False)
    assert parse_path("/" + DAY.path + ".CHECKSUM") == (DAY, True)
    assert parse_path("/data/futures/um/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-05.zip") is None
    assert len(month.days()) == 31


def test_whole_past_months_are_monthly_files_then_days_then_nothing_for_today() -> None:
    files = archive_files(
        "BTCUSDT",
        "1m",
        since=datetime(2024, 1, 30, tzinfo=UTC),
        until=datetime(2024, 4, 3, 12, tzinfo=UTC),
        today=date(2024, 4, 3),
    )
    assert [f.label for f in files] == ["2024-01-30", "2024-01-31", "2024-02", "2024-03", "2024-04-01", "2024-04-02"]


def test_a_month_not_over_or_not_whole_in_the_range_is_days() -> None:
    files = archive_files(
        "BTCUSDT",
        "1h",
        since=datetime(2024, 3, 1, tzinfo=UTC),
        until=datetime(2024, 3, 3, tzinfo=UTC),
        today=date(2024, 5, 1),
    )
    assert [f.label for f in files] == ["2024-03-01", "2024-03-02"]
    assert (
        archive_files(
            "BTCUSDT",
            "1h",
            since=datetime(2024, 3, 1, tzinfo=UTC),
            until=datetime(2024, 4, 1, tzinfo=UTC),
            today=date(2024, 3, 20),
        )[-1].label
        == "2024-03-19"
    )


def test_the_simulator_publishes_days_before_today_and_months_before_this_one_after_the_listing() -> None:
    def day(d: date) -> ArchiveFile:
        return ArchiveFile(symbol="BTCUSDT", interval="1m", period="daily", start=d)

    month = ArchiveFile(symbol="BTCUSDT", interval="1m", period="monthly", start=date(2024, 2, 1))
    listed = date(2019, 9, 25)
    assert published(day(date(2024, 3, 9)), today=date(2024, 3, 10), listed=listed)
    assert not published(day(date(2024, 3, 10)), today=date(2024, 3, 10), listed=listed)
    assert published(month, today=date(2024, 3, 1), listed=listed)
    assert not published(month, today=date(2024, 2, 29), listed=listed)
    assert not published(day(date(2019, 9, 24)), today=date(2024, 3, 10), listed=listed)
