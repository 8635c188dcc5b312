"""Which archive files the mirror serves, pure: complete past days and months, exchange gaps as Binance's files."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from klines.api.archive_check import Refused, check_complete, check_request, gap_slots
from klines.binance.archive import DAILY, MONTHLY, ArchiveFile

DAY = ArchiveFile(symbol="BTCUSDT", interval="1m", period=DAILY, start=date(2024, 3, 5))
MONTH = ArchiveFile(symbol="BTCUSDT", interval="1h", period=MONTHLY, start=date(2024, 2, 1))
RECORDED = {"symbols": {"BTCUSDT"}, "intervals": {"1m", "1h", "3d"}}


def test_a_complete_day_and_month_are_served() -> None:
    check_complete(DAY, stored=1440, exchange_gaps=0)
    check_complete(MONTH, stored=29 * 24, exchange_gaps=0)


def test_minutes_the_exchange_never_had_are_left_out_as_binance_does() -> None:
    gaps = [(datetime(2024, 3, 5, 10, 0, tzinfo=UTC), datetime(2024, 3, 5, 10, 29, tzinfo=UTC))]
    assert gap_slots(gaps, DAY) == 30
    check_complete(DAY, stored=1410, exchange_gaps=gap_slots(gaps, DAY))


def test_a_gap_is_counted_only_inside_the_file() -> None:
    gaps = [(datetime(2024, 3, 4, 23, 0, tzinfo=UTC), datetime(2024, 3, 5, 0, 9, tzinfo=UTC))]
    assert gap_slots(gaps, DAY) == 10


def test_a_hole_the_repair_may_fill_is_refused() -> None:
    with pytest.raises(Refused, match="incomplete, 1 of 1440 klines missing"):
        check_complete(DAY, stored=1439, exchange_gaps=0)
    with pytest.raises(Refused, match="no klines of it are stored"):
        check_complete(DAY, stored=0, exchange_gaps=0)


def test_only_past_files_of_recorded_pairs_and_intervals_that_divide_a_day() -> None:
    check_request(DAY, **RECORDED, today=date(2024, 3, 6))
    with pytest.raises(Refused, match="its day is not over yet"):
        check_request(DAY, **RECORDED, today=date(2024, 3, 5))
    with pytest.raises(Refused, match="its month is not over yet"):
        check_request(MONTH, **RECORDED, today=date(2024, 2, 29))
    three_days = ArchiveFile(symbol="BTCUSDT", interval="3d", period=MONTHLY, start=date(2024, 2, 1))
    with pytest.raises(Refused, match="only intervals that divide a day"):
        check_request(three_days, **RECORDED, today=date(2025, 1, 1))
