"""Parsing Binance stream frames and REST rows (pure, from recorded messages)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from bson.decimal128 import Decimal128

from klines.binance.parse import (
    DECIMAL_PLACES,
    WHOLE_DIGITS,
    MalformedMessage,
    combined_stream_url,
    parse_rest_row,
    parse_stream_message,
    storable,
)

DATA = Path(__file__).parent / "data"
CLOSED = (DATA / "btcusdt_closed.json").read_text()
OPEN = (DATA / "btcusdt_open.json").read_text()


def mangled(**changes: object) -> str:
    frame = json.loads(CLOSED)
    frame["data"]["k"].update(changes)
    return json.dumps(frame)


def test_closed_frame_parses_every_field_exactly() -> None:
    update = parse_stream_message(CLOSED)
    kline = update.kline
    assert update.closed is True
    assert kline.symbol == "BTCUSDT"
    assert kline.interval == "1m"
    assert kline.open_time == datetime(2025, 11, 25, 10, 0, tzinfo=UTC)
    assert kline.close_time == datetime(2025, 11, 25, 10, 0, 59, 999000, tzinfo=UTC)
    assert (kline.open, kline.high, kline.low, kline.close) == (
        Decimal("87012.30"),
        Decimal("87088.00"),
        Decimal("86990.40"),
        Decimal("87050.10"),
    )
    assert kline.volume == Decimal("153.412")
    assert kline.quote_volume == Decimal("13351984.05310")
    assert kline.trades == 2133
    assert kline.taker_buy_base_volume == Decimal("81.207")
    assert kline.taker_buy_quote_volume == Decimal("7067714.11220")


def test_open_frame_is_marked_not_closed() -> None:
    assert parse_stream_message(OPEN).closed is False


def test_rest_row_and_stream_close_give_the_same_kline() -> None:
    row = json.loads((DATA / "btcusdt_rest_row.json").read_text())
    assert parse_rest_row(row, symbol="btcusdt", interval="1m") == parse_stream_message(CLOSED).kline


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "not an object"),
        ('{"stream": "btcusdt@kline_1m"}', "no 'data'"),
        ('{"stream": "x", "data": {"e": "kline", "s": "BTCUSDT"}}', "no 'k'"),
        ('{"stream": "x", "data": {"e": "aggTrade", "s": "BTCUSDT"}}', "unexpected event type"),
        (mangled(c="abc"), "k.c is not a number"),
        (mangled(o=None), "k.o is not a decimal string"),
        (mangled(h="NaN"), "k.h is not finite"),
        (mangled(t="1764064800000"), "k.t is not an integer"),
        (mangled(x="true"), "k.x is not a boolean"),
        (mangled(c="1E+9999"), "k.c does not fit a Decimal128"),
        (mangled(c="1234567890123456789012345678901234567890"), "k.c does not fit a Decimal128"),
        (mangled(q="1." + "0" * 39), "k.q does not fit a Decimal128"),
        (mangled(c="0.0000000000001"), "k.c has more than 12 decimal places"),
        (mangled(v="1234567890123456789"), "k.v has more than 18 digits before the point"),
        (mangled(n=2**63), "k.n is out of range"),
        (mangled(n=-1), "k.n is out of range"),
        (mangled(t=10**20), "k.t is out of range"),
    ],
)
def test_malformed_frames_raise_with_the_offending_part(text: str, complaint: str) -> None:
    with pytest.raises(MalformedMessage, match=complaint):
        parse_stream_message(text)


def test_a_rest_row_with_a_value_the_store_cannot_hold_is_malformed() -> None:
    row = json.loads((DATA / "btcusdt_rest_row.json").read_text())
    row[4] = "1E+9999"
    with pytest.raises(MalformedMessage, match="row\\[4\\] close does not fit a Decimal128") as caught:
        parse_rest_row(row, symbol="btcusdt", interval="1m")
    assert caught.value.kind == "row[4] close"


@pytest.mark.parametrize(
    "text",
    [
        "87012.30",
        "0.00000000",
        "0.00000000000000000",
        "123.450000000000000",
        "0.000000000001",
        "999999999999999999.999999999999",
        "1E+3",
    ],
)
def test_what_the_parser_accepts_is_stored_digit_for_digit(text: str) -> None:
    # Trailing zeros are digits as written, not decimal places of the value: kept, not refused.
    number = storable(Decimal(text), "k.c")
    assert str(Decimal128(number).to_decimal()) == str(Decimal(text))


def test_the_parsers_limits_are_the_models() -> None:
    from klines.models import Kline

    field = Kline._meta.get_field("close")
    assert (field.decimal_places, field.max_digits - field.decimal_places) == (DECIMAL_PLACES, WHOLE_DIGITS)


def test_combined_stream_url_keeps_symbol_order_under_market_path() -> None:
    url = combined_stream_url("wss://fstream.binance.com/market", [("btcusdt", "1m"), ("ethusdt", "1m")])
    assert url == "wss://fstream.binance.com/market/stream?streams=btcusdt@kline_1m/ethusdt@kline_1m"


def test_a_close_dated_after_its_own_event_is_refused_as_future_dated() -> None:
    frame = json.loads(mangled())
    frame["data"]["E"] = frame["data"]["k"]["T"] - 25 * 60_000  # a simulated clock 25 minutes ahead
    with pytest.raises(MalformedMessage) as raised:
        parse_stream_message(json.dumps(frame))
    assert raised.value.kind == "future"
    frame["data"]["E"] = frame["data"]["k"]["T"] + 1
    assert parse_stream_message(json.dumps(frame)).closed
