"""Binance's per-connection stream limit, in process (a daphne recording 1,100 symbols would take minutes to load)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from channels.testing import WebsocketCommunicator

from binancews.asgi import application

SYMBOLS = tuple(f"c{i:04d}usdt" for i in range(1100))


@pytest.fixture
def many_symbols(settings) -> None:
    settings.BINANCEWS = replace(settings.BINANCEWS, symbols=SYMBOLS, poll_seconds=60.0)


@pytest.mark.django_db(transaction=True)
async def test_the_1025th_stream_is_an_error_reply_and_the_connection_stays_open(many_symbols) -> None:
    communicator = WebsocketCommunicator(application, "/market/ws")
    assert (await communicator.connect())[0]
    first = [f"{s}@kline_1m" for s in SYMBOLS[:1000]]
    await communicator.send_to(text_data=json.dumps({"method": "SUBSCRIBE", "params": first, "id": 1}))
    assert json.loads(await communicator.receive_from(timeout=10)) == {"result": None, "id": 1}
    more = [f"{s}@kline_1m" for s in SYMBOLS[990:1024]]  # ten repeats: 1024 in all
    await communicator.send_to(text_data=json.dumps({"method": "SUBSCRIBE", "params": more, "id": 2}))
    assert json.loads(await communicator.receive_from(timeout=10)) == {"result": None, "id": 2}
    await communicator.send_to(
        text_data=json.dumps({"method": "SUBSCRIBE", "params": [f"{SYMBOLS[1024]}@kline_1m"], "id": 3})
    )
    reply = json.loads(await communicator.receive_from(timeout=10))
    assert reply["code"] == 2 and reply["id"] == 3 and "1024" in reply["msg"]
    await communicator.send_to(text_data=json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 4}))
    assert len(json.loads(await communicator.receive_from(timeout=10))["result"]) == 1024
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_url_naming_1025_streams_is_refused_at_the_handshake(many_symbols) -> None:
    streams = "/".join(f"{s}@kline_1m" for s in SYMBOLS[:1025])
    communicator = WebsocketCommunicator(application, f"/market/stream?streams={streams}")
    connected, _ = await communicator.connect()
    assert not connected
    await communicator.disconnect()
