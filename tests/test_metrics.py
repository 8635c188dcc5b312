"""GET /metrics: Prometheus text for allowed addresses only, and counters that move with what clients see."""

from __future__ import annotations

from dataclasses import replace

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from binancews.asgi import application
from binancews.config import ConfigError, load_config
from klines.serving.metrics_access import DEFAULT_METRICS_ALLOWED_IPS, address_allowed
from klines.store.writes import save_kline
from tests.helpers import closed_kline, connected

pytestmark = pytest.mark.django_db(transaction=True)


def scrape(client: Client | None = None, address: str = "127.0.0.1") -> dict[str, float]:
    """Every sample of ``/metrics`` as ``name{labels}`` -> value."""
    response = (client or Client()).get("/metrics", REMOTE_ADDR=address)
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("10.1.2.3", True),
        ("172.20.0.5", True),
        ("192.168.1.9", True),
        ("::ffff:10.0.0.1", True),
        ("8.8.8.8", False),
        ("172.32.0.1", False),
        ("2001:db8::1", False),
        ("", False),
        ("not-an-ip", False),
    ],
)
def test_default_allows_loopback_and_private_ranges_only(address: str, allowed: bool) -> None:
    assert address_allowed(address, DEFAULT_METRICS_ALLOWED_IPS) is allowed


def test_metrics_allowed_ips_takes_addresses_and_ranges_and_names_a_bad_one() -> None:
    config = load_config({"DJANGO_DEBUG": "true", "METRICS_ALLOWED_IPS": "203.0.113.7, 198.51.100.0/24"})
    assert config.serving.metrics_allowed_ips == ("203.0.113.7", "198.51.100.0/24")
    assert load_config({"DJANGO_DEBUG": "true"}).serving.metrics_allowed_ips == DEFAULT_METRICS_ALLOWED_IPS
    with pytest.raises(ConfigError, match="METRICS_ALLOWED_IPS: 'prometheus' is not an IP address"):
        load_config({"DJANGO_DEBUG": "true", "METRICS_ALLOWED_IPS": "prometheus"})


def test_metrics_refuses_a_foreign_address() -> None:
    response = Client().get("/metrics", REMOTE_ADDR="8.8.8.8")
    assert response.status_code == 403
    assert b"binancews_" not in response.content


def test_metrics_follows_metrics_allowed_ips(settings) -> None:
    settings.BINANCEWS = replace(settings.BINANCEWS, metrics_allowed_ips=("203.0.113.7",))
    assert Client().get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403
    assert Client().get("/metrics", REMOTE_ADDR="203.0.113.7").status_code == 200


def test_metrics_is_prometheus_text_with_the_service_metrics() -> None:
    response = Client().get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response["Content-Type"].startswith("text/plain; version=")
    text = response.content.decode()
    for name in (
        "binancews_connected_clients",
        "binancews_frames_sent_total",
        "binancews_clients_closed_total",
        "binancews_fanout_seconds",
        "binancews_reconcile_read_seconds",
        "binancews_layer_messages_total",
        "binancews_database_up",
        "binancews_channel_layer_up",
    ):
        assert f"# TYPE {name} " in text, name
    assert scrape()["binancews_channel_layer_up{}"] == 1


async def test_a_connected_client_its_frames_and_an_abusive_close_show_in_the_metrics() -> None:
    from asgiref.sync import sync_to_async

    await sync_to_async(save_kline)(closed_kline("BTCUSDT", 0))
    before = await sync_to_async(scrape)()
    communicator = await connected()
    during = await sync_to_async(scrape)()
    assert during["binancews_connected_clients{endpoint=/}"] == 1
    sent = "binancews_frames_sent_total{endpoint=/}"
    assert during[sent] - before.get(sent, 0) == 5
    assert during["binancews_reconcile_read_seconds_count{}"] > 0
    assert during["binancews_database_up{}"] == 1
    for _ in range(11):  # more than ten messages a second closes the connection
        await communicator.send_to(text_data="x")
    assert (await communicator.receive_output(timeout=10))["type"] == "websocket.close"
    after = await sync_to_async(scrape)()
    closed = "binancews_clients_closed_total{reason=abusive}"
    assert after[closed] - before.get(closed, 0) == 1
    assert after["binancews_connected_clients{endpoint=/}"] == 0
    await communicator.disconnect()


async def test_a_client_given_up_as_too_slow_shows_in_the_metrics() -> None:
    import asyncio
    import itertools

    from asgiref.sync import sync_to_async

    from klines.serving.outbox import Outbox

    closed = "binancews_clients_closed_total{reason=slow}"
    before = (await sync_to_async(scrape)())[closed]
    stuck = asyncio.Event()
    given_up = asyncio.Event()

    async def never_returns(frame: str) -> None:
        await stuck.wait()

    async def too_slow(owed: int) -> None:
        given_up.set()

    frames = (str(n).rjust(100, "x") for n in itertools.count())  # each close a new 100-byte frame
    closes = itertools.count()
    outbox = Outbox(
        lambda symbol: next(frames), lambda symbol: next(closes), never_returns, max_owed=1000, too_slow=too_slow
    )
    outbox.start()
    for _ in range(11):  # 1100 bytes owed: past the bound
        outbox.offer(["BTCUSDT"])
    await asyncio.wait_for(given_up.wait(), timeout=10)
    assert (await sync_to_async(scrape)())[closed] - before == 1
    outbox.stop()


def _fanout(samples: dict[str, float], event: str) -> tuple[float, float]:
    """(count, sum) of the fan-out latency histogram for ``event``."""
    return samples[f"binancews_fanout_seconds_count{{event={event}}}"], samples[
        f"binancews_fanout_seconds_sum{{event={event}}}"
    ]


async def _stream_client(path: str) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, path)
    assert (await communicator.connect())[0]
    return communicator


async def _joined(redis_url: str, groups: tuple[str, ...]) -> None:
    """Wait until the feed's layer channel is in ``groups`` (channels_redis keeps a group as a sorted set)."""
    import asyncio
    import time

    import redis.asyncio

    client = redis.asyncio.from_url(redis_url)
    deadline = time.monotonic() + 10
    try:
        while not all([await client.zcard(f"asgi:group:{group}") for group in groups]):
            assert time.monotonic() < deadline, f"the feed never joined {groups}"
            await asyncio.sleep(0.05)
    finally:
        await client.aclose()


async def test_fanout_latency_times_a_close_and_updates_through_redis_to_the_frames_sent(
    settings, redis_server
) -> None:
    """The ingest's messages through a real Redis: stored (or received) -> the last frame sent, once per event.

    The close is published ``DELAY`` after it was stored, so its latency is at
    least that; at most, the test's own span. Reconciling is off (an hour), so
    only the layer brings it.
    """
    import asyncio
    import json
    import time

    from asgiref.sync import sync_to_async
    from channels.layers import get_channel_layer

    from klines.events import GROUP, UPDATES_GROUP, kline_to_message, now_ms, updates_message

    delay = 0.3
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [redis_server.url]}}
    }
    settings.BINANCEWS = replace(settings.BINANCEWS, poll_seconds=3600.0)
    await sync_to_async(save_kline)(closed_kline("BTCUSDT", 0))
    root = await connected()
    stream = await _stream_client("/ws/btcusdt@kline_1m")
    await _joined(redis_server.url, (GROUP, UPDATES_GROUP))
    before = await sync_to_async(scrape)()

    started = int(time.time() * 1000) / 1000  # to the millisecond, as the stamps are
    close = closed_kline("BTCUSDT", 1)
    await sync_to_async(save_kline)(close)
    stored_ms = now_ms()
    await asyncio.sleep(delay)
    await get_channel_layer().group_send(GROUP, kline_to_message(close, stored_ms))
    assert json.loads(await root.receive_from(timeout=10))["coin"] == "BTCUSDT"
    assert json.loads(await stream.receive_from(timeout=10))["k"]["x"] is True
    update = closed_kline("BTCUSDT", 2)
    text = json.dumps({"e": "kline", "s": "BTCUSDT", "k": {"t": 1, "x": False}})
    open_ms = int(update.open_time.timestamp() * 1000)
    await get_channel_layer().group_send(
        UPDATES_GROUP, updates_message([("btcusdt@kline_1m", open_ms, text)], now_ms())
    )
    assert await stream.receive_from(timeout=10) == text
    span = time.time() - started

    after = await sync_to_async(scrape)()
    (count_before, sum_before), (count_after, sum_after) = _fanout(before, "close"), _fanout(after, "close")
    assert count_after - count_before == 1  # one close, two clients on two endpoints: one observation
    assert delay <= sum_after - sum_before <= span
    (count_before, sum_before), (count_after, sum_after) = _fanout(before, "update"), _fanout(after, "update")
    assert count_after - count_before == 1
    assert 0 < sum_after - sum_before <= span
    await root.disconnect()
    await stream.disconnect()


async def test_fanout_latency_times_a_close_found_by_reconciling(settings) -> None:
    """No layer message: the reconcile finds the close; stored_at -> its frame sent is observed once."""
    import json
    import time

    from asgiref.sync import sync_to_async

    settings.BINANCEWS = replace(settings.BINANCEWS, poll_seconds=0.2)
    await sync_to_async(save_kline)(closed_kline("ETHUSDT", 0))
    communicator = await connected()
    before = await sync_to_async(scrape)()

    started = int(time.time() * 1000) / 1000  # to the millisecond, as stored_at is kept
    await sync_to_async(save_kline)(closed_kline("ETHUSDT", 1))  # stored only: nothing published
    assert json.loads(await communicator.receive_from(timeout=10))["coin"] == "ETHUSDT"
    span = time.time() - started
    await communicator.receive_nothing(timeout=1)  # a few more polls re-read the row: not news again

    after = await sync_to_async(scrape)()
    (count_before, sum_before), (count_after, sum_after) = _fanout(before, "close"), _fanout(after, "close")
    assert count_after - count_before == 1
    assert 0 < sum_after - sum_before <= span
    await communicator.disconnect()


async def test_a_client_that_never_takes_its_frame_does_not_hold_back_the_fanout_latency() -> None:
    """Two connections get a close; one's send never returns and it is given up: the other's send is observed."""
    import asyncio

    from asgiref.sync import sync_to_async

    from klines.serving.delivery import CLOSE, Delivery
    from klines.serving.outbox import Outbox

    before = _fanout(await sync_to_async(scrape)(), "close")
    stuck, sent = asyncio.Event(), asyncio.Event()

    async def never_returns(frame: str) -> None:
        await stuck.wait()

    async def returns(frame: str) -> None:
        sent.set()

    async def too_slow(owed: int) -> None:
        pass

    fast = Outbox(lambda symbol: "x", lambda symbol: None, returns, max_owed=1000, too_slow=too_slow)
    slow = Outbox(lambda symbol: "x", lambda symbol: None, never_returns, max_owed=1000, too_slow=too_slow)
    for outbox in (fast, slow):
        outbox.start()
    delivery = Delivery(CLOSE, started=0.0)  # stored at the epoch: any latency observed is positive
    for outbox in (fast, slow):
        outbox.offer(["BTCUSDT"], delivery)
    delivery.seal()
    await asyncio.wait_for(sent.wait(), timeout=10)
    await asyncio.sleep(0)
    assert _fanout(await sync_to_async(scrape)(), "close") == before  # the slow one still owes its frame
    slow.stop()
    count, total = _fanout(await sync_to_async(scrape)(), "close")
    assert count - before[0] == 1
    assert total - before[1] > 0
    fast.stop()
