"""Selections on ``/``: other recorded coins, interval and window, same payload shape; bad ones refused."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from binancews.asgi import application
from klines.serving.payloads import build_payload, encode_frame
from klines.serving.selection import Selection, SelectionError, parse_selection
from klines.store.writes import save_kline
from tests.helpers import ZONE, closed_kline

DEFAULT = Selection(symbols=("BTCUSDT", "ETHUSDT"), interval="1m", window=10)
RECORDED = {"BTCUSDT", "ETHUSDT", "SOLUSDT"}


def select(query: str) -> Selection:
    return parse_selection(query, default=DEFAULT, symbols=RECORDED, intervals={"1m", "5m"})


def test_a_selection_names_coins_interval_and_window() -> None:
    assert select("coins=ethusdt,solusdt&interval=5m&window=30") == Selection(
        symbols=("ETHUSDT", "SOLUSDT"), interval="5m", window=30
    )
    assert select("window=500") == replace(DEFAULT, window=500)


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("coins=dogeusdt", "coin DOGEUSDT is not recorded here"),
        ("coins=", "comma-separated"),
        ("coins=btcusdt,btcusdt", "twice"),
        ("interval=7m", "interval '7m' is not recorded here"),
        ("window=501", "from 1 to 500"),
        ("window=0", "from 1 to 500"),
        ("window=ten", "from 1 to 500"),
        ("colour=red", "unknown parameter 'colour'"),
        ("window=5&window=6", "more than once"),
    ],
)
def test_an_invalid_selection_is_refused_with_a_reason(query: str, says: str) -> None:
    with pytest.raises(SelectionError, match=says):
        select(query)


async def store(symbol: str, offsets: range) -> None:
    for offset in offsets:
        await sync_to_async(save_kline)(closed_kline(symbol, offset))


@pytest.mark.django_db(transaction=True)
async def test_a_selection_gets_its_coins_with_a_longer_window_then_each_new_close(settings) -> None:
    settings.BINANCEWS = replace(settings.BINANCEWS, poll_seconds=0.2)
    await store("ETHUSDT", range(40))
    await store("SOLUSDT", range(5))
    communicator = WebsocketCommunicator(application, "/?coins=solusdt,ethusdt&window=30")
    assert (await communicator.connect())[0]
    first = [json.loads(await communicator.receive_from(timeout=10)) for _ in range(2)]
    eth = [closed_kline("ETHUSDT", i) for i in range(40)]
    sol = [closed_kline("SOLUSDT", i) for i in range(5)]
    assert first == [build_payload("SOLUSDT", sol, ZONE, 30), build_payload("ETHUSDT", eth[-31:], ZONE, 30)]
    assert len(first[1]["values"]) == 30
    await store("ETHUSDT", range(40, 41))
    eth.append(closed_kline("ETHUSDT", 40))
    pushed = json.loads(await communicator.receive_from(timeout=10))
    assert pushed == build_payload("ETHUSDT", eth[-31:], ZONE, 30)
    assert await communicator.receive_nothing(timeout=0.5)  # SOLUSDT did not change; BTCUSDT is not selected
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_the_default_path_is_unchanged_next_to_a_selection() -> None:
    await store("BTCUSDT", range(12))
    selected = WebsocketCommunicator(application, "/?coins=btcusdt&window=3")
    assert (await selected.connect())[0]
    assert json.loads(await selected.receive_from(timeout=10)) == build_payload(
        "BTCUSDT", [closed_kline("BTCUSDT", i) for i in range(8, 12)], ZONE, 3
    )
    default = WebsocketCommunicator(application, "/")
    assert (await default.connect())[0]
    frames = [await default.receive_from(timeout=10) for _ in range(5)]
    btc = [closed_kline("BTCUSDT", i) for i in range(1, 12)]
    assert frames[0] == encode_frame(build_payload("BTCUSDT", btc, ZONE))
    await selected.disconnect()
    await default.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_an_invalid_selection_is_refused_at_the_handshake() -> None:
    communicator = WebsocketCommunicator(application, "/?coins=dogeusdt")
    connected, code = await communicator.connect()
    assert not connected
    await communicator.disconnect()
