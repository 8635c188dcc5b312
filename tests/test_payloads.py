"""Payload building (pure): the frame contract clients rely on."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from klines.serving.payloads import build_payload, encode_frame

UTC_ZONE = ZoneInfo("UTC")


@dataclass
class K:
    open_time: datetime
    open: Decimal
    close: Decimal


def series(*pairs: tuple[str, str], start: datetime = datetime(2025, 1, 1, 10, 0, tzinfo=UTC)) -> list[K]:
    return [K(start + timedelta(minutes=i), Decimal(o), Decimal(c)) for i, (o, c) in enumerate(pairs)]


def test_issue_example() -> None:
    klines = series(("100", "101"), ("101", "100.5"), ("100.5", "100.5"))
    assert build_payload("btcusdt", klines, UTC_ZONE) == {
        "coin": "BTCUSDT",
        "values": [101.0, 100.5, 100.5],
        "operations": ["BUY", "SELL", "BUY"],
        "time": ["10:00", "10:01", "10:02"],
    }


def test_equal_close_counts_as_buy() -> None:
    klines = series(("5", "7"), ("7", "7"))
    assert build_payload("X", klines, UTC_ZONE)["operations"] == ["BUY", "BUY"]


def test_lone_kline_compares_with_its_own_open() -> None:
    assert build_payload("X", series(("10", "9")), UTC_ZONE)["operations"] == ["SELL"]


def test_eleventh_kline_judges_the_oldest_shown_but_is_not_shown() -> None:
    pairs = [("1", "50")] + [("50", str(40 + i)) for i in range(10)]  # 11 klines
    payload = build_payload("X", series(*pairs), UTC_ZONE)
    assert len(payload["values"]) == 10
    assert payload["values"][0] == 40.0
    assert payload["operations"][0] == "SELL"  # 40 < 50, the 11th's close, though 40 < its open too
    assert payload["time"][0] == "10:01"


def test_fewer_than_ten_gives_shorter_equal_arrays() -> None:
    payload = build_payload("X", series(("1", "2"), ("2", "3"), ("3", "1"), ("1", "1")), UTC_ZONE)
    assert len(payload["values"]) == len(payload["operations"]) == len(payload["time"]) == 4


def test_no_klines_gives_empty_arrays() -> None:
    assert build_payload("ethusdt", [], UTC_ZONE) == {"coin": "ETHUSDT", "values": [], "operations": [], "time": []}


def test_times_are_shown_in_the_configured_zone() -> None:
    klines = series(("1", "2"), start=datetime(2025, 7, 1, 23, 30, tzinfo=UTC))
    assert build_payload("X", klines, ZoneInfo("Asia/Kolkata"))["time"] == ["05:00"]
    assert build_payload("X", klines, ZoneInfo("America/New_York"))["time"] == ["19:30"]


def test_values_are_json_numbers() -> None:
    frame = encode_frame(build_payload("X", series(("0.1", "0.3000")), UTC_ZONE))
    assert json.loads(frame)["values"] == [0.3]
