"""The websocket on ``/`` through channels' WebsocketCommunicator, on a real SecantusDB."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import replace

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from binancews.asgi import application
from klines.events import GROUP, kline_to_message
from klines.serving.payloads import build_payload
from klines.serving.routing import websocket_application
from klines.store.writes import save_kline
from tests.helpers import SYMBOLS, ZONE, closed_kline

pytestmark = pytest.mark.django_db(transaction=True)


def expected(symbol: str, offsets: range) -> dict:
    return build_payload(symbol, [closed_kline(symbol, o) for o in offsets][-11:], ZONE)


async def store(symbol: str, offsets: range) -> None:
    for offset in offsets:
        await database_sync_to_async(save_kline)(closed_kline(symbol, offset))


async def receive_frames(communicator: WebsocketCommunicator, count: int) -> list[dict]:
    return [json.loads(await communicator.receive_from(timeout=10)) for _ in range(count)]


async def test_connect_sends_five_payloads_in_symbol_order() -> None:
    await store("BTCUSDT", range(12))
    await store("ETHUSDT", range(3))
    communicator = WebsocketCommunicator(application, "/")
    connected, _ = await communicator.connect()
    assert connected
    frames = await receive_frames(communicator, 5)
    assert [f["coin"] for f in frames] == SYMBOLS
    assert frames[0] == expected("BTCUSDT", range(12))
    assert len(frames[0]["values"]) == 10
    assert frames[2] == expected("ETHUSDT", range(3))
    assert frames[1] == {"coin": "BNBUSDT", "values": [], "operations": [], "time": []}
    assert await communicator.receive_nothing(timeout=0.2)
    await communicator.disconnect()


async def test_connections_are_served_from_memory(settings, mongo_reads) -> None:
    settings.BINANCEWS = replace(settings.BINANCEWS, poll_seconds=60)  # keep the reconciler quiet during the count
    await store("BTCUSDT", range(2))
    first = WebsocketCommunicator(application, "/")
    await first.connect()
    await receive_frames(first, 5)
    reads_before = mongo_reads.reads
    assert reads_before > 0  # the first connection made the feed load from the database

    others = [WebsocketCommunicator(application, "/") for _ in range(20)]
    for communicator in others:
        await communicator.connect()
        frames = await receive_frames(communicator, 5)
        assert frames[0] == expected("BTCUSDT", range(2))
    assert mongo_reads.reads == reads_before
    for communicator in [first, *others]:
        await communicator.disconnect()


async def test_disconnect_does_not_wait_for_the_database_thread() -> None:
    """A busy worker thread (say, a slow query) must not hold up connects or disconnects."""
    communicator = WebsocketCommunicator(application, "/")
    await communicator.connect()
    await receive_frames(communicator, 5)
    release = threading.Event()
    busy = asyncio.ensure_future(sync_to_async(release.wait, thread_sensitive=True)())
    try:
        second = WebsocketCommunicator(application, "/")
        assert (await second.connect())[0]
        await receive_frames(second, 5)
        for client in (communicator, second):
            await client.disconnect(timeout=3)
            assert client.future.done() and not client.future.cancelled()  # it finished; it was not cut off
    finally:
        release.set()
        await busy


async def test_published_close_pushes_the_updated_frame() -> None:
    await store("SOLUSDT", range(10))
    communicator = WebsocketCommunicator(application, "/")
    await communicator.connect()
    await receive_frames(communicator, 5)

    new = closed_kline("SOLUSDT", 10)
    await database_sync_to_async(save_kline)(new)
    await get_channel_layer().group_send(GROUP, kline_to_message(new))

    frame = json.loads(await communicator.receive_from(timeout=5))
    assert frame == expected("SOLUSDT", range(11))
    assert frame["time"][-1] == new.open_time.strftime("%H:%M")
    assert await communicator.receive_nothing(timeout=1.5)  # the reconciler sees nothing new to send
    await communicator.disconnect()


async def test_close_stored_without_a_publish_arrives_by_reconciling() -> None:
    await store("XRPUSDT", range(3))
    communicator = WebsocketCommunicator(application, "/")
    await communicator.connect()
    await receive_frames(communicator, 5)

    await store("XRPUSDT", range(3, 4))  # e.g. an ingest with no shared channel layer
    frame = json.loads(await communicator.receive_from(timeout=3))
    assert frame == expected("XRPUSDT", range(4))
    await communicator.disconnect()


async def test_client_messages_are_ignored_and_the_connection_stays_open() -> None:
    communicator = WebsocketCommunicator(application, "/")
    await communicator.connect()
    await receive_frames(communicator, 5)
    await communicator.send_to(text_data="hello?")
    await communicator.send_to(text_data='{"subscribe": "DOGEUSDT"}')
    await communicator.send_to(bytes_data=b"\x00\xff")
    assert await communicator.receive_nothing(timeout=0.3)
    await store("BTCUSDT", range(1))  # still subscribed: the next close arrives
    assert json.loads(await communicator.receive_from(timeout=3))["coin"] == "BTCUSDT"
    await communicator.disconnect()


async def test_unknown_path_is_rejected() -> None:
    communicator = WebsocketCommunicator(application, "/other/")
    connected, code = await communicator.connect()
    assert not connected
    await communicator.disconnect()


async def test_any_origin_is_accepted_by_default() -> None:
    communicator = WebsocketCommunicator(application, "/", headers=[(b"origin", b"https://dashboard.example")])
    connected, _ = await communicator.connect()
    assert connected
    await communicator.disconnect()


async def test_ws_allowed_origins_restricts_who_may_connect() -> None:
    app = websocket_application(("https://dashboard.example",))
    allowed = WebsocketCommunicator(app, "/", headers=[(b"origin", b"https://dashboard.example")])
    assert (await allowed.connect())[0]
    await allowed.disconnect()
    for origin in (b"https://evil.example", b"http://dashboard.example"):
        refused = WebsocketCommunicator(app, "/", headers=[(b"origin", origin)])
        assert not (await refused.connect())[0]
        await refused.disconnect()
