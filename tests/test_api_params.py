"""The rules of ``GET /fapi/v1/klines``'s parameters, as Binance applies them (pure)."""

from __future__ import annotations

import pytest

from klines.api.errors import BinanceError
from klines.api.params import DEFAULT_LIMIT, LATEST_MS, MAX_LIMIT, KlineQuery, parse_kline_query

RECORDED = {"symbols": frozenset({"BTCUSDT", "ETHUSDT"}), "intervals": frozenset({"1m", "5m"})}


def parse(**query: str) -> KlineQuery:
    return parse_kline_query(query, **RECORDED)


def error(**query: str) -> tuple[int, str]:
    with pytest.raises(BinanceError) as raised:
        parse(**query)
    return raised.value.code, raised.value.msg


def test_symbol_and_interval_are_enough() -> None:
    assert parse(symbol="BTCUSDT", interval="1m") == KlineQuery(
        symbol="BTCUSDT", interval="1m", start_ms=None, end_ms=None, limit=DEFAULT_LIMIT
    )


def test_lower_case_symbols_are_accepted() -> None:
    assert parse(symbol="ethusdt", interval="5m").symbol == "ETHUSDT"


def test_times_and_limit_are_read() -> None:
    query = parse(symbol="BTCUSDT", interval="1m", startTime="1000", endTime="2000", limit="1500")
    assert (query.start_ms, query.end_ms, query.limit) == (1000, 2000, MAX_LIMIT)


@pytest.mark.parametrize("missing", ["symbol", "interval"])
def test_a_missing_mandatory_parameter_is_1102(missing: str) -> None:
    query = {"symbol": "BTCUSDT", "interval": "1m", missing: ""}
    assert error(**query) == (
        -1102,
        f"Mandatory parameter '{missing}' was not sent, was empty/null, or malformed.",
    )


@pytest.mark.parametrize("name", ["limit", "startTime", "endTime"])
@pytest.mark.parametrize("value", ["ten", "1.5", "1e3", "12345678901234567890123"])
def test_a_malformed_number_is_1100(name: str, value: str) -> None:
    code, msg = error(symbol="BTCUSDT", interval="1m", **{name: value})
    assert code == -1100
    assert f"parameter '{name}'" in msg


def test_a_malformed_symbol_is_1100() -> None:
    assert error(symbol="BTC/USDT", interval="1m")[0] == -1100


@pytest.mark.parametrize("limit", ["0", "-1", "1501", "100000"])
def test_a_limit_out_of_range_is_1130(limit: str) -> None:
    assert error(symbol="BTCUSDT", interval="1m", limit=limit) == (
        -1130,
        "Data sent for parameter 'limit' is not valid.",
    )


def test_a_negative_time_is_1130() -> None:
    assert error(symbol="BTCUSDT", interval="1m", startTime="-5")[0] == -1130


def test_start_after_end_is_1023() -> None:
    assert error(symbol="BTCUSDT", interval="1m", startTime="2000", endTime="1000") == (
        -1023,
        "Start time is greater than end time.",
    )


def test_a_symbol_not_recorded_is_1121() -> None:
    assert error(symbol="DOGEUSDT", interval="1m") == (-1121, "Invalid symbol.")


def test_an_interval_not_recorded_is_1120() -> None:
    assert error(symbol="BTCUSDT", interval="1h") == (-1120, "Invalid interval.")
    assert error(symbol="BTCUSDT", interval="7m") == (-1120, "Invalid interval.")


def test_times_beyond_the_calendar_are_clamped_not_a_crash() -> None:
    query = parse(symbol="BTCUSDT", interval="1m", startTime="99999999999999999", endTime="99999999999999999")
    assert query.start_ms == query.end_ms == LATEST_MS
