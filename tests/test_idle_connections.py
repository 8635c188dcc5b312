"""What an idle connection on ``/`` holds: no task of its own between frames, yet every new close reaches it."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from klines.events import GROUP, kline_to_message
from klines.store.writes import save_kline
from tests.helpers import closed_kline, connected

pytestmark = pytest.mark.django_db(transaction=True)

CLIENTS = 10


async def test_idle_connections_hold_no_task_of_their_own_and_still_get_every_close() -> None:
    for offset in range(3):
        await sync_to_async(save_kline, thread_sensitive=False)(closed_kline("BTCUSDT", offset))
    first = await connected()  # starts the feed's own tasks
    await asyncio.sleep(0.1)
    before = len(asyncio.all_tasks())
    clients = [await connected() for _ in range(CLIENTS)]
    await asyncio.sleep(0.1)  # the senders are done with the five frames
    # One task per connection: the test's communicator running the application. No receive or send task.
    assert len(asyncio.all_tasks()) - before == CLIENTS

    close = closed_kline("BTCUSDT", 3)
    await get_channel_layer().group_send(GROUP, kline_to_message(close))
    for communicator in [first, *clients]:
        frame = json.loads(await communicator.receive_from(timeout=10))
        assert frame["coin"] == "BTCUSDT"
        assert len(frame["values"]) == 4
    for communicator in [first, *clients]:
        await communicator.disconnect()
