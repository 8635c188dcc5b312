"""Live Binance-protocol streams end to end: fake exchange -> real ingest -> (Redis) -> real daphne -> clients.

With Redis the streams carry every in-progress update and each close after it is
stored; without Redis, closes only. Two widely used Binance clients, on their
default code paths, receive the events from the service's stream base URL.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pymongo
import pytest
import websocket

from klines.testing.servers import RedisServer, daphne, free_port, stop_process
from tests.fake_exchange import ExchangeThread
from tests.helpers import Ingest, ingest_env, make_exchange, wait_until

pytestmark = pytest.mark.e2e

SYMBOLS = ["BTCUSDT", "ETHUSDT"]


@dataclass
class Service:
    port: int
    collection: pymongo.collection.Collection

    def stored_open_ms(self, symbol: str) -> set[int]:
        rows = self.collection.find({"symbol": symbol, "interval": "1m"}, {"open_time": 1})
        return {int(r["open_time"].timestamp() * 1000) for r in rows}


def run_service(secantus, database: str, tmp_path: Path, *, redis_url: str | None) -> Iterator[Service]:
    exchange = make_exchange(SYMBOLS, speed=6.0)  # a 1m kline closes every 10 s, updates every 0.1 s
    with ExchangeThread(exchange) as thread:
        extra = {"KLINE_POLL_SECONDS": "0.5"}
        if redis_url:
            extra["REDIS_URL"] = redis_url
        env = ingest_env(secantus.uri, database, thread, SYMBOLS, **extra)
        ingest = Ingest(env, tmp_path).start()
        port = free_port()
        server = daphne(port, env, tmp_path / "daphne.log")
        try:
            yield Service(port, pymongo.MongoClient(secantus.uri)[database]["klines"])
        finally:
            stop_process(server)
            ingest.stop()
    assert "Traceback" not in (tmp_path / "daphne.log").read_text()


@pytest.fixture
def with_redis(secantus, database: str, tmp_path: Path) -> Iterator[Service]:
    redis = RedisServer(tmp_path / "redis.log").start()
    try:
        yield from run_service(secantus, database, tmp_path, redis_url=redis.url)
    finally:
        redis.stop()


@pytest.fixture
def without_redis(secantus, database: str, tmp_path: Path) -> Iterator[Service]:
    yield from run_service(secantus, database, tmp_path, redis_url=None)


class Events:
    """A raw websocket-client reader of one stream URL, in a thread; notes which closes were stored on arrival."""

    def __init__(self, url: str, service: Service) -> None:
        self.ws = websocket.create_connection(url, timeout=30)
        self.service = service
        self.events: list[dict] = []
        self.stored_on_arrival: list[bool] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                event = json.loads(self.ws.recv())
            except (websocket.WebSocketException, OSError, ValueError):
                return
            event = event.get("data", event)
            if event["k"]["x"]:
                stored = self.service.stored_open_ms(event["s"])
                self.stored_on_arrival.append(event["k"]["t"] in stored)
            self.events.append(event)

    def closes(self) -> list[dict]:
        return [e for e in list(self.events) if e["k"]["x"]]

    def updates(self) -> list[dict]:
        return [e for e in list(self.events) if not e["k"]["x"]]


def test_with_redis_updates_flow_and_each_close_follows_its_storing(with_redis: Service) -> None:
    reader = Events(f"ws://127.0.0.1:{with_redis.port}/market/ws/btcusdt@kline_1m", with_redis)
    wait_until(lambda: len(reader.updates()) >= 10, timeout=60, what="in-progress updates on the raw stream")
    wait_until(lambda: len(reader.closes()) >= 2, timeout=60, what="two closes on the raw stream")
    reader.ws.close()
    assert all(reader.stored_on_arrival), "a close arrived before it was stored"
    closes = [e["k"]["t"] for e in reader.closes()]
    assert closes == sorted(set(closes)), "a close came twice or out of order"
    assert {e["s"] for e in reader.events} == {"BTCUSDT"}
    closed_before: set[int] = set()
    for event in reader.events:  # an in-progress update of a kline already closed is never relayed
        assert event["k"]["x"] or event["k"]["t"] not in closed_before
        if event["k"]["x"]:
            closed_before.add(event["k"]["t"])


def test_without_redis_the_streams_carry_closes_only(without_redis: Service) -> None:
    reader = Events(f"ws://127.0.0.1:{without_redis.port}/market/stream?streams=ethusdt@kline_1m", without_redis)
    wait_until(lambda: len(reader.closes()) >= 2, timeout=60, what="two closes found by reconciling")
    reader.ws.close()
    assert reader.updates() == []
    assert all(reader.stored_on_arrival)


def test_binance_futures_connector_receives_live_events(with_redis: Service) -> None:
    from binance.websocket.um_futures.websocket_client import UMFuturesWebsocketClient

    received: list[dict] = []

    def on_message(_client, text: str) -> None:
        received.append(json.loads(text))

    client = UMFuturesWebsocketClient(stream_url=f"ws://127.0.0.1:{with_redis.port}", on_message=on_message)
    try:
        client.kline(symbol="btcusdt", interval="1m")
        events = lambda: [m for m in list(received) if m.get("e") == "kline"]  # noqa: E731
        wait_until(lambda: len(events()) >= 5, timeout=60, what="kline events through binance-futures-connector")
    finally:
        client.stop()
    assert {"result": None, "id": received[0].get("id")} in received  # its SUBSCRIBE was answered
    assert all(e["s"] == "BTCUSDT" and e["k"]["i"] == "1m" for e in events())


def test_python_binance_receives_live_events(with_redis: Service) -> None:
    from binance import AsyncClient, BinanceSocketManager

    async def read(count: int) -> list[dict]:
        client = AsyncClient()  # no request is made: only its socket manager is used
        try:
            manager = BinanceSocketManager(client)
            manager.FSTREAM_URL = f"ws://127.0.0.1:{with_redis.port}/"
            messages = []
            async with manager.futures_multiplex_socket(["ethusdt@kline_1m"]) as socket:
                while len(messages) < count:
                    messages.append(await asyncio.wait_for(socket.recv(), 30))
            return messages
        finally:
            await client.close_connection()

    messages = asyncio.run(read(5))
    assert all(m["stream"] == "ethusdt@kline_1m" and m["data"]["e"] == "kline" for m in messages)
