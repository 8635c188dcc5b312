"""Parsing Binance stream frames and REST rows (pure, from recorded messages)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from klines.binance.parse import MalformedMessage, combined_stream_url, parse_rest_row, parse_stream_message

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
    ],
)
def test_malformed_frames_raise_with_the_offending_part(text: str, complaint: str) -> None:
    with pytest.raises(MalformedMessage, match=complaint):
        parse_stream_message(text)


def test_combined_stream_url_keeps_symbol_order_under_market_path() -> None:
    url = combined_stream_url("wss://fstream.binance.com/market", ("btcusdt", "ethusdt"), "1m")
    assert url == "wss://fstream.binance.com/market/stream?streams=btcusdt@kline_1m/ethusdt@kline_1m"
