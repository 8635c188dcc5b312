"""A real Prometheus scrapes a daphne and the ingest; what an operator's queries see as the run's events happen."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
from pathlib import Path

import httpx
import pytest
import websocket

from klines.testing.servers import PrometheusServer, RedisServer, SecantusServer, daphne, free_port, stop_process
from tests.fake_exchange import ExchangeThread
from tests.helpers import Ingest, ingest_env, make_exchange, offset_after_now, publish_closes_until, wait_until

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


def clients_gone(prometheus: PrometheusServer, what: str) -> None:
    wait_until(
        lambda: query(prometheus, 'binancews_connected_clients{endpoint="/"}') == 0, timeout=40, what=what, every=0.5
    )


@pytest.mark.e2e
def test_prometheus_sees_closes_stored_a_reconnect_a_client_and_a_slow_one_closed(
    secantus: SecantusServer, database: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    executable = prometheus_binary()
    fake = make_exchange(SYMBOLS)
    ingest_port, web_port = free_port(), free_port()
    with ExchangeThread(fake) as exchange:
        env = ingest_env(
            secantus.uri,
            database,
            exchange,
            SYMBOLS,
            KLINE_METRICS_PORT=str(ingest_port),
            REDIS_URL=redis_server.url,  # closes reach the daphne through Redis, timed by their stored_ms
            WS_MAX_PENDING_BYTES="65536",  # a client that stops reading is given up soon
        )
        ingest = Ingest(env, tmp_path).start()
        web = daphne(web_port, env, tmp_path / "daphne.log")
        targets = {"binancews-ingest": f"127.0.0.1:{ingest_port}", "binancews-web": f"127.0.0.1:{web_port}"}
        prometheus = PrometheusServer(executable, tmp_path / "prometheus", targets).start()
        client = slow = None
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
            fanned_out = 'binancews_fanout_seconds_count{event="close"}'
            reaches(prometheus, fanned_out, 1, "a close's fan-out to the client timed, through Prometheus")
            assert 0 < query(prometheus, 'binancews_fanout_seconds_sum{event="close"}') < 3600
            client.close()
            client = None
            clients_gone(prometheus, "the client gone, through Prometheus")

            slow = websocket.create_connection(
                f"ws://127.0.0.1:{web_port}/", timeout=10, sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),)
            )  # reads nothing
            reaches(prometheus, 'binancews_connected_clients{endpoint="/"}', 1, "the slow client, through Prometheus")
            slow_closes = 'binancews_clients_closed_total{reason="slow"}'
            assert query(prometheus, slow_closes) == 0
            seen = lambda: (query(prometheus, slow_closes) or 0) >= 1  # noqa: E731
            first = offset_after_now()  # newer than the exchange's klines, so each is a new frame for the client
            asyncio.run(publish_closes_until(redis_server.url, "BTCUSDT", seen, first=first, limit=40_000))
            clients_gone(prometheus, "the slow client gone, through Prometheus")
            for expr in dashboard_queries():  # each panel's query is valid PromQL
                answer = httpx.get(f"{prometheus.url}/api/v1/query", params={"query": expr}, timeout=5).json()
                assert answer["status"] == "success", (expr, answer)
        except BaseException:
            print(f"--- ingest log ---\n{ingest.log[-3000:]}")
            raise
        finally:
            for connection in (client, slow):
                if connection is not None:
                    connection.close()
            prometheus.stop()
            stop_process(web)
            ingest.stop(signal.SIGKILL)
