"""End to end over real sockets: simulated exchange -> ingest_klines -> SecantusDB -> daphne -> client."""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pymongo
import pytest
import websocket

from klines.binance.parse import parse_rest_row
from klines.serving.payloads import build_payload
from klines.simexchange.server import SimulatedExchange
from klines.testing.servers import SecantusServer, daphne, exchange_urls, free_port, manage, service_env, stop_process
from tests.fake_exchange import ExchangeThread
from tests.helpers import SYMBOLS, ZONE, wait_until

pytestmark = pytest.mark.e2e
CLOSE_ROUNDS = 3


def stored_keys(klines: pymongo.collection.Collection) -> set[tuple[str, datetime]]:
    return {(row["symbol"], row["open_time"]) for row in klines.find({}, {"symbol": 1, "open_time": 1})}


def test_closed_klines_flow_from_exchange_to_websocket_client(
    secantus: SecantusServer, database: str, tmp_path: Path
) -> None:
    exchange = SimulatedExchange(
        symbols=SYMBOLS, speed=60, update_seconds=0.1, duplicate_closes=True, max_close_rounds=CLOSE_ROUNDS
    )
    klines = pymongo.MongoClient(secantus.uri)[database]["klines"]
    with ExchangeThread(exchange) as running:
        env = service_env(
            secantus.uri,
            database,
            **exchange_urls(running.port),
        )
        ingest_log = tmp_path / "ingest.log"
        with ingest_log.open("wb") as log:
            ingest = manage(["ingest_klines", "-v", "2"], env, stdout=log, stderr=log)  # a line per stored kline
            try:
                wait_until(
                    lambda: exchange.close_rounds >= CLOSE_ROUNDS, timeout=30, what="the exchange to close klines"
                )
                sent_keys = {
                    (k.symbol, datetime.fromtimestamp(k.open_ms / 1000, UTC).replace(tzinfo=None))
                    for k in exchange.closed_sent
                }
                wait_until(lambda: sent_keys <= stored_keys(klines), timeout=30, what="the ingest to store them")
                time.sleep(0.5)  # a late duplicate would land now
            finally:
                assert stop_process(ingest) == 0  # SIGTERM is a clean stop
    output = ingest_log.read_text()

    # Every close was sent twice; each is stored exactly once, with the exchange's exact values. The
    # ingest also backfilled the klines before the first close from REST (at least 11: full payloads).
    sent = {(k.symbol, k.open_ms): k for k in exchange.closed_sent}
    assert len(exchange.closed_sent) == 2 * len(sent)
    truth = {}
    for symbol in SYMBOLS:
        stored = list(klines.find({"symbol": symbol}).sort("open_time", 1))
        first, last = (int(row["open_time"].replace(tzinfo=UTC).timestamp()) // 60 for row in (stored[0], stored[-1]))
        expected = [
            parse_rest_row(exchange.series.kline(symbol, i).rest_row(), symbol=symbol, interval="1m")
            for i in range(first, last + 1)
        ]
        assert len(stored) == len(expected) >= 11 + 1
        assert [row["close"].to_decimal() for row in stored] == [k.close for k in expected]
        assert [row["volume"].to_decimal() for row in stored] == [k.volume for k in expected]
        truth[symbol] = expected
    assert output.count("stored ") == klines.count_documents({})
    assert f"ws://127.0.0.1:{running.port}/market/stream?streams=btcusdt@kline_1m/bnbusdt@kline_1m" in output

    port = free_port()
    server = daphne(port, env, tmp_path / "daphne.log")
    try:
        client = websocket.create_connection(f"ws://127.0.0.1:{port}/", timeout=10)
        frames = [json.loads(client.recv()) for _ in SYMBOLS]
        assert frames == [build_payload(s, truth[s][-11:], ZONE) for s in SYMBOLS]
        assert all(len(f["values"]) == 10 for f in frames)
        client.send("anything at all")  # ignored, connection stays open
        client.settimeout(1.5)
        with pytest.raises(websocket.WebSocketTimeoutException):
            client.recv()
        client.close()

        with pytest.raises(websocket.WebSocketBadStatusException):
            websocket.create_connection(f"ws://127.0.0.1:{port}/elsewhere", timeout=10)

        static = urllib.request.urlopen(f"http://127.0.0.1:{port}/static/admin/css/base.css", timeout=10)
        assert static.status == 200
        login = urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/login/", timeout=10).read().decode()
        assert "/static/admin/css/base.css" in login
    finally:
        stop_process(server)
    assert "Traceback" not in (tmp_path / "daphne.log").read_text()
