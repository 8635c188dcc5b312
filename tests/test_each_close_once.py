"""Each close reaches a client once (issue 23, item 3), through the real pipeline: the store, the ingest's
channel-layer messages (in memory and through a real Redis), the feed and channels' WebsocketCommunicator.

* ``/``: one frame per change of a coin's newest close. History that reaches the book after a newer close
  (an ingest's start-up or restart backfill, stored after its first live close) sends nothing more.
* Binance-protocol streams: history is never sent as live. Of closes stored together (a backfill), only the
  newest goes out, dated by its own close, not by the clock of the process that relays it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import replace

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from binancews.asgi import application
from klines.binance.parse import datetime_to_ms
from klines.events import GROUP, UPDATES_GROUP, closed_messages
from klines.serving.payloads import build_payload
from klines.store.writes import save_klines
from tests.helpers import ZONE, closed_kline, connected

pytestmark = pytest.mark.django_db(transaction=True)

MINUTE_MS = 60_000


@pytest.fixture(params=["memory", "redis"])
def layer(request: pytest.FixtureRequest, settings) -> Iterator[str | None]:
    """The channel layer the ingest and the feed share: channels' in-memory one, or a real Redis."""
    if request.param == "memory":
        yield None
        return
    redis_server = request.getfixturevalue("redis_server")
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [redis_server.url]}}
    }
    yield redis_server.url


@pytest.fixture(autouse=True)
def _quick_polls(settings) -> None:
    settings.BINANCEWS = replace(settings.BINANCEWS, poll_seconds=0.2)  # reconciling runs too, as in production


async def joined(redis_url: str | None) -> None:
    """Wait until the feed's layer channel is in the groups the ingest publishes to."""
    deadline = asyncio.get_running_loop().time() + 10
    if redis_url is None:
        layer = get_channel_layer()
        while not all(layer.groups.get(group) for group in (GROUP, UPDATES_GROUP)):
            assert asyncio.get_running_loop().time() < deadline, "the feed never joined the layer's groups"
            await asyncio.sleep(0.02)
        return
    import redis.asyncio

    client = redis.asyncio.from_url(redis_url)
    try:
        while not all([await client.zcard(f"asgi:group:{group}") for group in (GROUP, UPDATES_GROUP)]):
            assert asyncio.get_running_loop().time() < deadline, "the feed never joined the layer's groups"
            await asyncio.sleep(0.05)
    finally:
        await client.aclose()


async def ingest_stores(klines: list, *, exchange_ms: int) -> None:
    """What the ingest does with a batch: store it, then publish one layer message per stored close."""
    await publish(await sync_to_async(save_klines, thread_sensitive=False)(klines), exchange_ms=exchange_ms)


async def publish(klines: list, *, exchange_ms: int) -> None:
    layer = get_channel_layer()
    for message in closed_messages(klines, exchange_ms=exchange_ms):
        await layer.group_send(GROUP, message)


def close_ms(offset: int) -> int:
    return datetime_to_ms(closed_kline("BTCUSDT", offset).close_time)


async def drain(communicator: WebsocketCommunicator, *, quiet: float = 1.5) -> list[dict]:
    """Every frame until none arrives for ``quiet`` seconds (several reconciles)."""
    frames = []
    while not await communicator.receive_nothing(timeout=quiet):
        frames.append(json.loads(await communicator.receive_from()))
    return frames


def payload(offsets: range) -> dict:
    return build_payload("BTCUSDT", [closed_kline("BTCUSDT", o) for o in offsets][-11:], ZONE)


async def test_history_after_a_live_close_sends_no_more_frames_on_the_feed(layer: str | None) -> None:
    """An ingest restarts after downtime: its first live close (13) is stored and published before the
    backfill of the ten klines it missed (3-12). The client gets one frame for close 13, not one per
    kline of the backfill each ending with close 13; close 14 then brings the whole history."""
    await sync_to_async(save_klines, thread_sensitive=False)([closed_kline("BTCUSDT", o) for o in range(3)])
    client = await connected()
    await joined(layer)

    await ingest_stores([closed_kline("BTCUSDT", 13)], exchange_ms=close_ms(13) + 500)
    await ingest_stores([closed_kline("BTCUSDT", o) for o in range(3, 13)], exchange_ms=close_ms(13) + 900)
    btc = [frame for frame in await drain(client) if frame["coin"] == "BTCUSDT"]
    newest = closed_kline("BTCUSDT", 13)
    assert [(f["values"][-1], f["time"][-1]) for f in btc] == [
        (float(newest.close), newest.open_time.astimezone(ZONE).strftime("%H:%M"))
    ], f"{len(btc)} frames for one new close"

    await ingest_stores([closed_kline("BTCUSDT", 14)], exchange_ms=close_ms(14) + 500)
    assert [f for f in await drain(client) if f["coin"] == "BTCUSDT"] == [payload(range(15))]
    await client.disconnect()


async def stream_client() -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, "/ws/btcusdt@kline_1m")
    assert (await communicator.connect())[0]
    return communicator


async def test_a_backfill_on_an_empty_database_is_not_sent_as_live_closes(layer: str | None) -> None:
    """The daphne started on an empty database; the ingest's start-up backfill stores the newest eleven
    klines and publishes them. A stream client gets one close, the newest, dated by its close, not by now."""
    client = await stream_client()
    await connected()  # the feed has loaded (nothing)
    await joined(layer)

    now = close_ms(10) + 2_000  # the exchange's clock as the ingest knows it
    for batch in (range(4), range(4, 11)):  # the writer takes what has queued up: the backfill in two batches
        await ingest_stores([closed_kline("BTCUSDT", o) for o in batch], exchange_ms=now)
    events = [json.loads(text) for text in await drain_texts(client)]
    assert [(e["k"]["t"], e["k"]["x"], e["E"]) for e in events] == [
        (datetime_to_ms(closed_kline("BTCUSDT", 10).open_time), True, close_ms(10) + 1)
    ]
    await client.disconnect()


async def test_a_backfill_found_by_reconciling_sends_only_its_newest_close() -> None:
    """No layer message (an ingest without Redis): the daphne started on an empty database finds the
    backfill's eleven klines by reconciling. One close goes out, the newest, dated by its close."""
    client = await stream_client()
    await connected()

    await sync_to_async(save_klines, thread_sensitive=False)([closed_kline("BTCUSDT", o) for o in range(11)])
    events = [json.loads(text) for text in await drain_texts(client)]
    assert [(e["k"]["t"], e["E"]) for e in events] == [
        (datetime_to_ms(closed_kline("BTCUSDT", 10).open_time), close_ms(10) + 1)
    ]
    await client.disconnect()


async def test_a_stream_never_sends_a_close_it_sent_or_an_older_one(layer: str | None) -> None:
    """Live closes one by one reach the client once each, in order; the backfill of a hole below them,
    published late, sends nothing."""
    await sync_to_async(save_klines, thread_sensitive=False)([closed_kline("BTCUSDT", 0)])
    client = await stream_client()
    await connected()
    await joined(layer)

    for offset in (1, 2, 5):
        await ingest_stores([closed_kline("BTCUSDT", offset)], exchange_ms=close_ms(offset) + 300)
    await ingest_stores([closed_kline("BTCUSDT", o) for o in (3, 4)], exchange_ms=close_ms(5) + 600)
    await publish([closed_kline("BTCUSDT", 5)], exchange_ms=close_ms(5) + 700)  # again, from a second ingest
    events = [json.loads(text) for text in await drain_texts(client)]
    assert [e["k"]["t"] for e in events] == [datetime_to_ms(closed_kline("BTCUSDT", o).open_time) for o in (1, 2, 5)]
    await client.disconnect()


async def drain_texts(communicator: WebsocketCommunicator, *, quiet: float = 1.5) -> list[str]:
    texts = []
    while not await communicator.receive_nothing(timeout=quiet):
        texts.append(await communicator.receive_from())
    return texts


def test_a_batchs_history_is_marked_superseded_by_its_newer_closes_and_the_exchanges_clock() -> None:
    """Pure: of a backfill, only the newest close of each stream is live; a close published after the kline
    following it closed (by the exchange's clock) is history even alone in its batch."""
    batch = [closed_kline("BTCUSDT", o) for o in (0, 1, 2)] + [closed_kline("ETHUSDT", 2)]
    marks = [(m["symbol"], m.get("superseded", False)) for m in closed_messages(batch, exchange_ms=close_ms(2) + 1)]
    assert marks == [("BTCUSDT", True), ("BTCUSDT", True), ("BTCUSDT", False), ("ETHUSDT", False)]
    late = closed_messages([closed_kline("BTCUSDT", 2)], exchange_ms=close_ms(3) + 1)  # kline 3 closed already
    assert late[0]["superseded"] is True
    on_time = closed_messages([closed_kline("BTCUSDT", 2)], exchange_ms=close_ms(3))  # kline 3 closes now
    assert "superseded" not in on_time[0]
    assert "superseded" not in closed_messages([closed_kline("BTCUSDT", 0)])[0]  # no clock: live
