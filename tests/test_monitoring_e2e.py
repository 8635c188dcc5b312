"""A real Prometheus scrapes a daphne and the ingest; what an operator's queries see as the run's events happen."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import httpx
import pytest
import websocket

from klines.testing.servers import PrometheusServer, SecantusServer, daphne, free_port, stop_process
from tests.fake_exchange import ExchangeThread
from tests.helpers import Ingest, ingest_env, make_exchange, wait_until

DASHBOARD = Path(__file__).resolve().parent.parent / "docs" / "grafana-dashboard.json"
SYMBOLS = ["btcusdt", "bnbusdt", "ethusdt", "solusdt", "xrpusdt"]


def prometheus_binary() -> str:
    """Debian's ``prometheus``; skip without it (fail under CI, which installs it)."""
    found = shutil.which("prometheus")
    if found is None:
        reason = "prometheus is not installed (scripts/preflight test installs it)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: CI must install it")
        pytest.skip(reason)
    return found


def dashboard_queries() -> list[str]:
    return [target["expr"] for panel in json.loads(DASHBOARD.read_text())["panels"] for target in panel["targets"]]


def query(prometheus: PrometheusServer, promql: str) -> float | None:
    """The value of an instant query with one result (``None``: no result yet)."""
    answer = httpx.get(f"{prometheus.url}/api/v1/query", params={"query": promql}, timeout=5).json()
    assert answer["status"] == "success", answer
    results = answer["data"]["result"]
    return float(results[0]["value"][1]) if results else None


def reaches(prometheus: PrometheusServer, promql: str, minimum: float, what: str) -> None:
    wait_until(lambda: (query(prometheus, promql) or 0) >= minimum, timeout=40, what=what, every=0.5)


@pytest.mark.e2e
def test_prometheus_sees_closes_stored_a_reconnect_and_a_client(
    secantus: SecantusServer, database: str, tmp_path: Path
) -> None:
    executable = prometheus_binary()
    fake = make_exchange(SYMBOLS)
    ingest_port, web_port = free_port(), free_port()
    with ExchangeThread(fake) as exchange:
        env = ingest_env(secantus.uri, database, exchange, SYMBOLS, KLINE_METRICS_PORT=str(ingest_port))
        ingest = Ingest(env, tmp_path).start()
        web = daphne(web_port, env, tmp_path / "daphne.log")
        targets = {"binancews-ingest": f"127.0.0.1:{ingest_port}", "binancews-web": f"127.0.0.1:{web_port}"}
        prometheus = PrometheusServer(executable, tmp_path / "prometheus", targets).start()
        client = None
        try:
            reaches(prometheus, 'up{job="binancews-web"}', 1, "Prometheus to scrape the daphne")
            reaches(prometheus, "binancews_ingest_stored_total", 1, "a close stored, through Prometheus")
            assert query(prometheus, "binancews_ingest_reconnects_total") == 0
            assert fake.kill_connections() == 1
            reaches(prometheus, "binancews_ingest_reconnects_total", 1, "the forced reconnect, through Prometheus")
            reaches(prometheus, 'count(binancews_ingest_lag_seconds{interval="1m"})', len(SYMBOLS), "lag per symbol")

            client = websocket.create_connection(f"ws://127.0.0.1:{web_port}/", timeout=10)
            for _ in SYMBOLS:
                client.recv()
            reaches(prometheus, 'binancews_connected_clients{endpoint="/"}', 1, "the client, through Prometheus")
            reaches(prometheus, 'binancews_frames_sent_total{endpoint="/"}', 5, "its frames, through Prometheus")
            client.close()
            client = None
            wait_until(
                lambda: query(prometheus, 'binancews_connected_clients{endpoint="/"}') == 0,
                timeout=40,
                what="the client gone, through Prometheus",
                every=0.5,
            )
            for expr in dashboard_queries():  # each panel's query is valid PromQL
                answer = httpx.get(f"{prometheus.url}/api/v1/query", params={"query": expr}, timeout=5).json()
                assert answer["status"] == "success", (expr, answer)
        except BaseException:
            print(f"--- ingest log ---\n{ingest.log[-3000:]}")
            raise
        finally:
            if client is not None:
                client.close()
            prometheus.stop()
            stop_process(web)
            ingest.stop(signal.SIGKILL)
