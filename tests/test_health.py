"""GET /healthz: database, channel layer and per-symbol freshness."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from klines.serving.health import symbol_freshness
from klines.store.writes import save_kline
from tests.helpers import closed_kline

NOW = datetime(2025, 11, 25, 12, 0, tzinfo=UTC)


def test_a_symbol_is_fresh_within_two_intervals_plus_grace() -> None:
    newest = {"BTCUSDT": NOW - timedelta(seconds=149), "ETHUSDT": NOW - timedelta(seconds=61)}
    report, fresh = symbol_freshness(newest, now=NOW, interval_seconds=60, grace_seconds=30)
    assert fresh
    assert report["BTCUSDT"] == {
        "newest_open_time": "2025-11-25T11:57:31+00:00",
        "age_seconds": 149.0,
        "stale": False,
    }


def test_an_old_or_missing_symbol_is_stale() -> None:
    newest = {"BTCUSDT": NOW - timedelta(seconds=151), "ETHUSDT": NOW, "XRPUSDT": None}
    report, fresh = symbol_freshness(newest, now=NOW, interval_seconds=60, grace_seconds=30)
    assert not fresh
    assert [s for s, entry in report.items() if entry["stale"]] == ["BTCUSDT", "XRPUSDT"]


@pytest.mark.django_db(transaction=True)
def test_healthz_is_503_while_symbols_have_no_recent_kline() -> None:
    save_kline(closed_kline("BTCUSDT", 0))  # 2025: long ago
    response = Client().get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "stale"
    assert body["database"] == {"ok": True}
    assert body["channel_layer"]["ok"] is True
    assert body["symbols"]["BTCUSDT"]["newest_open_time"] == "2025-11-25T10:00:00+00:00"
    assert body["symbols"]["BNBUSDT"] == {"newest_open_time": None, "age_seconds": None, "stale": True}


@pytest.mark.django_db(transaction=True)
def test_healthz_is_200_when_every_symbol_is_fresh(settings) -> None:
    from klines.binance.parse import ClosedKline

    now = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    for symbol in settings.BINANCEWS.symbols:
        fields = {**closed_kline(symbol.upper(), 0).as_fields(), "open_time": now, "close_time": now}
        save_kline(ClosedKline(**fields))
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


@pytest.mark.django_db(transaction=True)
def test_healthz_reports_an_unreachable_channel_layer_without_the_drivers_text(settings) -> None:
    from dataclasses import replace

    from klines.testing.servers import free_port

    settings.BINANCEWS = replace(settings.BINANCEWS, redis_url=f"redis://127.0.0.1:{free_port()}/0")  # nobody there
    response = Client().get("/healthz")
    body = response.json()
    assert body["channel_layer"] == {"ok": False, "backend": "redis"}
    assert "127.0.0.1" not in response.content.decode()  # no host, port or driver message in the answer


def test_a_kline_from_the_future_is_flagged_not_fresh() -> None:
    newest = {"BTCUSDT": NOW + timedelta(minutes=25), "ETHUSDT": NOW - timedelta(seconds=61)}
    report, fresh = symbol_freshness(newest, now=NOW, interval_seconds=60, grace_seconds=30)
    assert not fresh
    assert report["BTCUSDT"]["future_dated"] is True
    assert "future_dated" not in report["ETHUSDT"]


@pytest.mark.django_db(transaction=True)
def test_healthz_reports_every_recorded_interval(settings) -> None:
    from dataclasses import replace

    from klines.binance.parse import ClosedKline

    settings.BINANCEWS = replace(
        settings.BINANCEWS, symbols=("btcusdt",), feed_symbols=("btcusdt",), intervals=("1m", "5m")
    )
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    fields = {**closed_kline("BTCUSDT", 0).as_fields(), "open_time": minute, "close_time": minute}
    save_kline(ClosedKline(**fields))
    response = Client().get("/healthz")
    body = response.json()
    assert (response.status_code, body["status"]) == (503, "stale")  # nothing at 5m yet
    assert body["symbols"]["BTCUSDT"]["stale"] is False
    assert body["intervals"]["1m"]["BTCUSDT"]["stale"] is False
    assert body["intervals"]["5m"]["BTCUSDT"] == {"newest_open_time": None, "age_seconds": None, "stale": True}


@pytest.mark.django_db(transaction=True)
def test_healthz_checks_every_recorded_symbol_not_only_those_the_feed_shows(settings) -> None:
    from dataclasses import replace

    settings.BINANCEWS = replace(settings.BINANCEWS, symbols=("btcusdt", "ethusdt"), feed_symbols=("btcusdt",))
    body = Client().get("/healthz").json()
    assert set(body["symbols"]) == {"BTCUSDT", "ETHUSDT"}


@pytest.mark.django_db(transaction=True)
def test_probes_and_scrapes_reuse_one_redis_connection(settings, redis_server) -> None:
    """Every ``/metrics`` scrape and ``/healthz`` probe pings Redis; they share one pooled connection,
    which comes back after a Redis restart."""
    from dataclasses import replace

    import redis

    settings.BINANCEWS = replace(settings.BINANCEWS, redis_url=redis_server.url)
    watcher = redis.Redis.from_url(redis_server.url)

    def connections_received() -> int:
        return watcher.info("stats")["total_connections_received"]

    def layer_up() -> bool:
        return "binancews_channel_layer_up 1.0" in Client().get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()

    before = connections_received()
    for _ in range(20):
        assert layer_up()
        assert Client().get("/healthz").json()["channel_layer"] == {"ok": True, "backend": "redis"}
    assert connections_received() - before <= 1  # 40 pings; one client per ping opened 40 connections
    redis_server.stop()
    assert not layer_up()
    redis_server.start()  # the same port
    assert layer_up()
    watcher.close()
