"""The ingest's metrics on KLINE_METRICS_PORT: its counters, as a scrape sees them while it runs."""

from __future__ import annotations

import signal

import httpx
import pymongo
import pytest
from prometheus_client.parser import text_string_to_metric_families

from klines.testing.servers import SecantusServer, free_port
from tests.fake_exchange import ExchangeThread
from tests.helpers import Ingest, empty_record, ingest_env, make_exchange, migrate, wait_until

SYMBOLS = ["btcusdt", "ethusdt"]
DATABASE = "metrics_ingest"


def scrape(port: int) -> dict[str, float]:
    """``name{labels}`` -> value; empty while nothing answers."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return {}
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


@pytest.mark.e2e
def test_the_ingest_exposes_stored_reconnects_and_lag_per_stream(secantus: SecantusServer, tmp_path) -> None:
    migrate(secantus.uri, DATABASE)
    client = pymongo.MongoClient(secantus.uri)
    empty_record(client[DATABASE])
    client.close()
    fake = make_exchange(SYMBOLS)
    port = free_port()
    with ExchangeThread(fake) as exchange:
        env = ingest_env(secantus.uri, DATABASE, exchange, SYMBOLS, KLINE_METRICS_PORT=str(port))
        ingest = Ingest(env, tmp_path).start()
        try:
            # A live close may be stored before the start-up backfill's klines (it runs beside the stream).
            first = wait_until(
                lambda: (
                    (s := scrape(port)).get("binancews_ingest_stored_total{}", 0) > 0
                    and s.get("binancews_ingest_backfilled_total{}", 0) > 0
                    and s
                ),
                timeout=30,
                what="a close stored and the start-up backfill, in the metrics",
            )
            assert first["binancews_ingest_rest_weight_total{}"] > 0
            assert "binancews_ingest_lag_seconds{interval=1m,symbol=BTCUSDT}" in first
            assert first["binancews_ingest_holes_total{interval=1m,symbol=ETHUSDT}"] == 0
            assert first["binancews_ingest_reconnects_total{}"] == 0
            assert fake.kill_connections() == 1
            wait_until(
                lambda: scrape(port).get("binancews_ingest_reconnects_total{}", 0) == 1,
                timeout=20,
                what="the reconnect, in the metrics",
            )
            wait_until(lambda: "stats:" in ingest.log, timeout=10, what="the stats line (it keeps working)")
        except BaseException:
            print(f"--- ingest log ---\n{ingest.log[-4000:]}")
            raise
        finally:
            ingest.stop(signal.SIGKILL)
    assert scrape(port) == {}  # gone with the process


def test_the_metrics_port_is_off_by_default_and_checked() -> None:
    from binancews.config import ConfigError, load_config

    assert load_config({"DJANGO_DEBUG": "true"}).ingest.metrics_port == 0
    assert load_config({"DJANGO_DEBUG": "true", "KLINE_METRICS_PORT": "9101"}).ingest.metrics_port == 9101
    with pytest.raises(ConfigError, match="KLINE_METRICS_PORT: 'x' is not a port number"):
        load_config({"DJANGO_DEBUG": "true", "KLINE_METRICS_PORT": "x"})
    with pytest.raises(ConfigError, match="KLINE_METRICS_ADDRESS"):
        load_config({"DJANGO_DEBUG": "true", "KLINE_METRICS_ADDRESS": "localhost"})


def test_a_skip_in_the_stream_counts_one_hole_for_its_symbol() -> None:
    from klines.ingest.gaps import SequenceWatch

    watch = SequenceWatch(60_000)
    for open_ms in (0, 60_000, 240_000, 300_000):  # 120_000 and 180_000 skipped: one hole
        watch.observe("BTCUSDT", open_ms)
    watch.observe("ETHUSDT", 0)
    watch.observe("ETHUSDT", 60_000)
    assert watch.holes == {"BTCUSDT": 1}
