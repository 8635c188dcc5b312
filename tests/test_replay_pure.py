"""The replay's pure parts: its parameters, merge order, pacing and frames."""

from __future__ import annotations

import json
from collections import deque

import pytest

from klines.api.stream_protocol import MAX_STREAMS, ProtocolError, StreamName
from klines.binance.parse import datetime_to_ms
from klines.serving.replay import due_after, next_stream, parse_replay, read_batch, replay_frame
from tests.helpers import closed_kline

RECORDED = {"symbols": {"BTCUSDT", "ETHUSDT"}, "intervals": {"1m", "5m"}}


def test_a_replay_is_parsed_with_end_now_and_real_time_by_default() -> None:
    replay = parse_replay(
        "streams=btcusdt@kline_1m/ethusdt@kline_5m/btcusdt@kline_1m&startTime=5", now_ms=99, **RECORDED
    )
    assert replay.streams == (StreamName("BTCUSDT", "1m"), StreamName("ETHUSDT", "5m"))  # a repeat counts once
    assert (replay.start_ms, replay.end_ms, replay.speed) == (5, 99, 1.0)
    assert parse_replay("streams=btcusdt@kline_1m&startTime=5&endTime=6&speed=0.5", now_ms=1, **RECORDED).speed == 0.5


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("startTime=1", "streams is required"),
        ("streams=btcusdt@kline_1m", "startTime is required"),
        ("streams=btcusdt@kline_1m&startTime=1.5", "startTime must be a time in milliseconds"),
        ("streams=btcusdt@kline_1m&startTime=1&endTime=x", "endTime must be a time in milliseconds"),
        ("streams=btcusdt@kline_1m&startTime=1000", "endTime must be after startTime"),  # now is 100
        ("streams=btcusdt@kline_1m&startTime=1&speed=nan", "speed must be a number"),
        ("streams=btcusdt@kline_1m&startTime=1&speed=inf", "speed must be a number"),
        ("streams=btcusdt@kline_1m&startTime=1&speed=100001", "speed must be a number from 0 to 100000"),
        ("streams=xrpusdt@kline_1m&startTime=1", "symbol XRPUSDT is not recorded here"),
    ],
)
def test_an_invalid_replay_is_refused_with_a_reason(query: str, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason) as refused:
        parse_replay(query, now_ms=100, **RECORDED)
    assert refused.value.msg.startswith("Invalid request: ")


def test_more_streams_than_a_connection_may_hold_are_refused() -> None:
    symbols = {f"S{i}USDT" for i in range(MAX_STREAMS + 1)}
    query = "streams=" + "/".join(f"{s.lower()}@kline_1m" for s in sorted(symbols)) + "&startTime=1"
    with pytest.raises(ProtocolError, match=f"at most {MAX_STREAMS}"):
        parse_replay(query, now_ms=100, symbols=symbols, intervals={"1m"})


def test_the_next_event_is_the_earliest_close_and_a_tie_goes_to_the_first_stream_named() -> None:
    five = deque([closed_kline("BTCUSDT", 0, "5m")])  # closes with the fifth 1m kline
    one = deque(closed_kline("ETHUSDT", offset) for offset in range(5, 7))
    early = deque([closed_kline("ETHUSDT", 3)])
    assert next_stream([five, one, early]) == 2
    assert next_stream([five, deque([closed_kline("ETHUSDT", 4)])]) == 0  # same close time: the first named
    assert next_stream([deque(), deque()]) is None


def test_events_are_due_by_their_close_times_over_the_speed() -> None:
    assert due_after(60_000, 60_000 + 10 * 60_000, 60) == 10.0  # speed=60: a minute a second
    assert due_after(0, 3_600_000, 1) == 3600.0
    assert due_after(0, 3_600_000, 0) == 0.0  # as fast as the client reads


def test_a_frame_is_the_live_streams_combined_close_with_e_one_ms_after_the_close() -> None:
    kline = closed_kline("BTCUSDT", 3)
    frame = json.loads(replay_frame("btcusdt@kline_1m", kline))
    assert frame["stream"] == "btcusdt@kline_1m"
    assert frame["data"]["E"] == datetime_to_ms(kline.close_time) + 1
    assert frame["data"]["k"]["x"] is True and frame["data"]["k"]["c"] == str(kline.close)


def test_a_replay_of_many_streams_reads_smaller_batches() -> None:
    assert read_batch(1) == read_batch(20) == 1000
    assert read_batch(MAX_STREAMS) == 20
