"""Binance's websocket stream protocol: names, paths, requests and error replies (pure)."""

from __future__ import annotations

import json

import pytest

from klines.api.stream_events import combined_frame, encode, kline_event
from klines.api.stream_protocol import (
    ProtocolError,
    Route,
    StreamName,
    parse_path,
    parse_request,
    parse_stream_name,
    result_reply,
)
from tests.helpers import closed_kline

TWO = ("btcusdt@kline_1m", "ethusdt@kline_5m")
RECORDED = {"symbols": {"BTCUSDT", "ETHUSDT"}, "intervals": {"1m", "5m"}}


def test_a_recorded_stream_name_is_parsed() -> None:
    assert parse_stream_name("btcusdt@kline_5m", **RECORDED) == StreamName("BTCUSDT", "5m")
    assert str(StreamName("BTCUSDT", "5m")) == "btcusdt@kline_5m"


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("dogeusdt@kline_1m", "symbol DOGEUSDT is not recorded"),
        ("btcusdt@kline_1h", "interval 1h is not recorded"),
        ("btcusdt@aggTrade", "unsupported stream"),
        ("BTCUSDT@kline_1m", "unsupported stream"),
    ],
)
def test_a_stream_not_recorded_is_an_error_not_silence(name: str, says: str) -> None:
    with pytest.raises(ProtocolError) as raised:
        parse_stream_name(name, **RECORDED)
    assert raised.value.code == 2 and says in raised.value.msg


@pytest.mark.parametrize(
    ("path", "query", "route"),
    [
        ("/market/ws/btcusdt@kline_1m", "", Route(combined=False, streams=("btcusdt@kline_1m",))),
        (
            "/ws/btcusdt@kline_1m/ethusdt@kline_5m",
            "",
            Route(combined=False, streams=TWO),
        ),
        ("/market/ws", "", Route(combined=False, streams=())),
        (
            "/market/stream",
            "streams=btcusdt@kline_1m/ethusdt@kline_5m",
            Route(combined=True, streams=TWO),
        ),
        ("/stream", "", Route(combined=True, streams=())),
    ],
)
def test_paths_name_the_streams(path: str, query: str, route: Route) -> None:
    assert parse_path(path, query) == route


def test_other_paths_are_not_stream_endpoints() -> None:
    assert parse_path("/", "") is None
    assert parse_path("/market/public", "") is None


def test_requests_are_parsed() -> None:
    request = parse_request('{"method": "SUBSCRIBE", "params": ["btcusdt@kline_1m"], "id": 7}')
    assert (request.method, request.params, request.id) == ("SUBSCRIBE", ("btcusdt@kline_1m",), 7)
    assert result_reply(None, 7) == '{"result":null,"id":7}'


@pytest.mark.parametrize(
    ("text", "code", "says"),
    [
        ("not json", 3, "Invalid JSON"),
        ("[1, 2]", 3, "Invalid JSON"),
        ('{"method": "SUBSCRIBE", "id": -1}', 2, "request ID must be an unsigned integer"),
        ('{"method": "SUBSCRIBE", "id": "one"}', 2, "request ID must be an unsigned integer"),
        ('{"params": [], "id": 1}', 2, "missing field `method`"),
        ('{"method": "PUBLISH", "id": 1}', 2, "unknown variant `PUBLISH`"),
        ('{"method": "SUBSCRIBE", "params": "btcusdt@kline_1m", "id": 1}', 2, "params must be an array"),
    ],
)
def test_malformed_requests_get_binance_s_error_reply(text: str, code: int, says: str) -> None:
    with pytest.raises(ProtocolError) as raised:
        parse_request(text)
    reply = json.loads(raised.value.reply())
    assert reply["code"] == code and says in reply["msg"]


def test_a_kline_event_has_binance_s_shape_and_the_stored_digits() -> None:
    kline = closed_kline("BTCUSDT", 0)
    event = kline_event(kline, closed=True, event_ms=123)
    assert set(event) == {"e", "E", "s", "k"} and event["e"] == "kline" and event["E"] == 123
    k = event["k"]
    assert (k["s"], k["i"], k["x"], k["n"]) == ("BTCUSDT", "1m", True, kline.trades)
    assert (k["o"], k["c"], k["h"], k["l"], k["v"]) == tuple(
        format(v, "f") for v in (kline.open, kline.close, kline.high, kline.low, kline.volume)
    )
    framed = json.loads(combined_frame("btcusdt@kline_1m", encode(event)))
    assert framed == {"stream": "btcusdt@kline_1m", "data": event}
