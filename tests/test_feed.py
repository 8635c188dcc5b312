"""The live feed's guarantees, through the websocket on ``/`` and a real SecantusDB.

Whatever order database reads and layer messages arrive in, what a client holds
last for a coin is the book's frame for it; rows stamped by a writer whose clock
is off still reach clients; and the feed's reads never wait behind Django's one
thread-sensitive worker.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.db import connection

from klines.events import GROUP, kline_to_message
from klines.models import Kline
from klines.serving import feed as feed_module
from klines.serving.feed import get_feed
from klines.serving.payloads import build_payload, encode_frame
from klines.store.writes import save_kline
from tests.helpers import ZONE, closed_kline, connected, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def payload(symbol: str, offsets: list[int]) -> dict:
    return build_payload(symbol, [closed_kline(symbol, o) for o in offsets][-11:], ZONE)


async def store(symbol: str, offsets: range) -> None:
    for offset in offsets:
        await sync_to_async(save_kline, thread_sensitive=False)(closed_kline(symbol, offset))


async def drain(communicator: WebsocketCommunicator, *, quiet: float = 1.5) -> list[dict]:
    """Every frame until none arrives for ``quiet`` seconds."""
    frames = []
    while not await communicator.receive_nothing(timeout=quiet):
        frames.append(json.loads(await communicator.receive_from()))
    return frames


async def test_a_layer_message_during_a_poll_is_not_overtaken_by_the_polls_older_frame(settings, monkeypatch) -> None:
    """The poll captured BTCUSDT with kline 10; kline 11 came by the layer before the poll finished.

    Pages of two rows make the poll read page after page; between two pages the
    layer delivers a newer close. The client must end on the frame with 11.
    """
    settings.BINANCEWS = settings.BINANCEWS.__class__(**{**settings.BINANCEWS.__dict__, "poll_seconds": 0.2})
    await store("BTCUSDT", range(10))
    await store("ETHUSDT", range(1))
    communicator = await connected()

    monkeypatch.setattr(feed_module, "POLL_BATCH", 2)
    real_read = feed_module.klines_stored_since
    tenth, eleventh = closed_kline("BTCUSDT", 10), closed_kline("BTCUSDT", 11)
    state = {"saw_tenth": False, "fired": False}

    def interleaving_read(*args):
        if state["saw_tenth"] and not state["fired"]:
            state["fired"] = True  # a newer close arrives through the layer while this page is read
            async_to_sync(get_channel_layer().group_send)(GROUP, kline_to_message(eleventh))
            wait_until(lambda: _holds(eleventh), timeout=5, what="the layer's close in the book")
        rows, read, newest = real_read(*args)
        if any(r.symbol == "BTCUSDT" and r.open_time == tenth.open_time for r in rows):
            state["saw_tenth"] = True
        return rows, read, newest

    monkeypatch.setattr(feed_module, "klines_stored_since", interleaving_read)
    await store("BTCUSDT", range(10, 11))
    await store("ETHUSDT", range(1, 2))  # a later row, so the poll reads one more page after kline 10's
    await asyncio.to_thread(wait_until, lambda: state["fired"], timeout=15, what="the interleaved layer message")

    btc = [f for f in await drain(communicator) if f["coin"] == "BTCUSDT"]
    assert btc, "no BTCUSDT frame after the new closes"
    assert btc[-1] == payload("BTCUSDT", list(range(12)))
    assert get_feed().book.frame("BTCUSDT") == encode_frame(payload("BTCUSDT", list(range(12))))
    await communicator.disconnect()


def _holds(kline) -> bool:
    return get_feed().book.newest_open_time("BTCUSDT") == kline.open_time


def _insert_stamped(kline, stored_at: datetime) -> None:
    """Store ``kline`` as a writer whose clock reads ``stored_at`` would (no auto-stamping)."""
    fields = {f.attname: f.get_db_prep_save(value, connection) for f, value in _field_values(kline)}
    fields["stored_at"] = stored_at
    connection.get_collection(Kline._meta.db_table).insert_one(fields)


def _field_values(kline):
    for name, value in kline.as_fields().items():
        yield Kline._meta.get_field(name), value


@pytest.mark.parametrize("seconds", [-8, 8, -120, 120])
async def test_rows_from_a_writer_with_a_skewed_clock_reach_clients(settings, seconds: int) -> None:
    """Two writers: one stamps ``stored_at`` correctly, the other ``seconds`` off; clients get both closes.

    A writer ahead moves the newest ``stored_at`` seen past the correct writer's
    next rows; a writer behind stamps rows the watermark has already passed.
    """
    settings.BINANCEWS = settings.BINANCEWS.__class__(**{**settings.BINANCEWS.__dict__, "poll_seconds": 0.2})
    await store("BTCUSDT", range(3))
    await store("SOLUSDT", range(3))
    communicator = await connected()

    now, skew = datetime.now(UTC), timedelta(seconds=seconds)
    skewed, correct = (closed_kline("SOLUSDT", 3), now + skew), (closed_kline("BTCUSDT", 3), now)
    first, second = (skewed, correct) if skew > timedelta(0) else (correct, skewed)
    for kline, stamp in (first, second):
        await sync_to_async(_insert_stamped, thread_sensitive=False)(kline, stamp)
        await asyncio.sleep(0.5)  # the second writer's row commits after the feed has seen the first's

    latest: dict[str, dict] = {}
    deadline = asyncio.get_running_loop().time() + 15
    while set(latest) != {"BTCUSDT", "SOLUSDT"} or any(len(f["values"]) < 4 for f in latest.values()):
        remaining = deadline - asyncio.get_running_loop().time()
        assert remaining > 0, f"the skewed writer's close never reached the client: {latest}"
        frame = json.loads(await communicator.receive_from(timeout=remaining))
        latest[frame["coin"]] = frame
    assert latest["BTCUSDT"] == payload("BTCUSDT", list(range(4)))
    assert latest["SOLUSDT"] == payload("SOLUSDT", list(range(4)))
    await communicator.disconnect()


async def test_a_busy_thread_sensitive_worker_does_not_delay_pushes(settings) -> None:
    """A slow admin page or /healthz holds Django's one thread-sensitive worker; closes still arrive."""
    settings.BINANCEWS = settings.BINANCEWS.__class__(**{**settings.BINANCEWS.__dict__, "poll_seconds": 0.2})
    await store("XRPUSDT", range(2))
    communicator = await connected()
    release = threading.Event()
    busy = asyncio.ensure_future(sync_to_async(release.wait, thread_sensitive=True)())
    try:
        await store("XRPUSDT", range(2, 3))  # no layer message: only the reconciler's read can find it
        frame = json.loads(await communicator.receive_from(timeout=8))
        assert frame == payload("XRPUSDT", list(range(3)))
        assert not busy.done()  # the worker was busy all along
    finally:
        release.set()
        await busy
    await communicator.disconnect()


async def test_a_slow_client_gets_the_newest_frame_and_never_holds_up_another() -> None:
    """Outboxes: while one client's send waits (as uvicorn's does for a peer that does not read), the
    book moves on; that client then gets the newest frame, not each one it missed (issue 23: latest state
    wins, where 30ccdd1 queued a frame per close); another client gets every frame meanwhile."""
    from klines.serving.outbox import Outbox

    book = {"BTCUSDT": "btc-1"}
    newest = {"BTCUSDT": 1}
    release = asyncio.Event()
    slow_got: list[str] = []
    fast_got: list[str] = []

    async def slow_send(frame: str) -> None:
        await release.wait()
        slow_got.append(frame)

    async def fast_send(frame: str) -> None:
        fast_got.append(frame)

    async def never_too_slow(owed: int) -> None:
        raise AssertionError(f"closed with {owed} bytes owed")

    outboxes = [
        Outbox(book.__getitem__, newest.__getitem__, send, max_owed=10_000, too_slow=never_too_slow)
        for send in (slow_send, fast_send)
    ]
    for outbox in outboxes:
        outbox.start()
    for close in (1, 2, 3, 4):
        book["BTCUSDT"], newest["BTCUSDT"] = f"btc-{close}", close
        for outbox in outboxes:
            outbox.offer(["BTCUSDT"])
        await asyncio.sleep(0.01)
    assert fast_got == ["btc-1", "btc-2", "btc-3", "btc-4"]
    assert slow_got == []  # still waiting on its first send (btc-1)
    release.set()
    await asyncio.sleep(0.01)
    assert slow_got == ["btc-1", "btc-4"]
    assert outboxes[0].owed == 0
    for outbox in outboxes:
        outbox.stop()


async def test_a_client_owed_more_than_the_bound_is_given_up() -> None:
    """Every frame offered since the last send finished counts, the ones replaced before they went out too."""
    from klines.serving.outbox import Outbox

    stuck = asyncio.Event()
    given_up: list[int] = []

    async def never_returns(frame: str) -> None:
        await stuck.wait()

    async def too_slow(owed: int) -> None:
        given_up.append(owed)

    frames = (str(n).rjust(100, "x") for n in itertools.count())  # each close a new 100-byte frame
    closes = itertools.count()
    outbox = Outbox(
        lambda symbol: next(frames), lambda symbol: next(closes), never_returns, max_owed=1000, too_slow=too_slow
    )
    outbox.start()
    for _ in range(10):
        outbox.offer(["BTCUSDT"])
    await asyncio.sleep(0.01)
    assert given_up == []  # 1000 bytes owed: at the bound, not past it
    outbox.offer(["BTCUSDT"])
    await asyncio.sleep(0.01)
    assert given_up == [1100]
    assert outbox.stopped


async def test_two_closes_of_a_coin_before_the_sender_runs_are_one_frame() -> None:
    """A starved process can take two closes of a coin from the layer before a connection's sender
    runs; the client gets the newer frame only (issue 23: a pending frame of a coin is replaced by the
    coin's newer one; 30ccdd1 sent both)."""
    await store("BTCUSDT", range(10))
    await store("ETHUSDT", range(1))
    communicator = await connected()
    feed = get_feed()
    closes = [kline_to_message(closed_kline("BTCUSDT", offset)) for offset in (10, 11)]
    await asyncio.gather(*(feed._apply_message(message) for message in closes))  # no send in between

    btc = [f for f in await drain(communicator) if f["coin"] == "BTCUSDT"]
    assert btc == [payload("BTCUSDT", list(range(12)))]
    await communicator.disconnect()
