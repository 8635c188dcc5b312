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
from tests.helpers import closed_kline

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
    communicator = WebsocketCommunicator(application, "/")
    assert (await communicator.connect())[0]
    for _ in range(5):
        await communicator.receive_from(timeout=10)
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

    outbox = Outbox(lambda symbol: "x" * 100, never_returns, max_owed=1000, too_slow=too_slow)
    outbox.start()
    for _ in range(11):  # 1100 bytes owed: past the bound
        outbox.offer(["BTCUSDT"], 100)
    await asyncio.wait_for(given_up.wait(), timeout=10)
    assert (await sync_to_async(scrape)())[closed] - before == 1
    outbox.stop()
