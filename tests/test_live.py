"""Live push and scale-out over real sockets: daphne processes, Redis, SecantusDB, the ingest."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import pymongo
import pytest
import websocket

from klines.serving.payloads import build_payload
from klines.simexchange.server import SimulatedExchange
from klines.testing.servers import (
    RedisServer,
    SecantusServer,
    daphne,
    exchange_urls,
    free_port,
    manage,
    service_env,
    stop_process,
    uvicorn,
)
from tests.fake_exchange import ExchangeThread
from tests.helpers import SYMBOLS, ZONE, Reader, closed_kline, publish_closes_until, store_klines, wait_until

pytestmark = pytest.mark.e2e


def stored(database: pymongo.database.Database, symbol: str) -> list[dict]:
    return list(database["klines"].find({"symbol": symbol}).sort("open_time", 1))


def hhmm(rows: list[dict]) -> list[str]:
    return [row["open_time"].replace(tzinfo=UTC).strftime("%H:%M") for row in rows]


def newest_changes(rows: list[dict]) -> list[dict]:
    """Each row, in the order stored, that was newer than every row stored before it.

    A close from the stream can be stored before the start-up backfill's older
    klines; those change no coin's newest close, so they push no frame (issue 23:
    a frame per change of the newest close, not one per backfilled kline).
    """
    newest: list[dict] = []
    for row in sorted(rows, key=lambda r: (r["stored_at"], r["_id"])):
        if not newest or row["open_time"] > newest[-1]["open_time"]:
            newest.append(row)
    return newest


def test_every_close_reaches_clients_of_two_daphne_processes_in_order_once(
    secantus: SecantusServer, database: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    exchange = SimulatedExchange(symbols=SYMBOLS, speed=60, update_seconds=0.1, max_close_rounds=4)
    db = pymongo.MongoClient(secantus.uri)[database]
    with ExchangeThread(exchange) as running:
        env = service_env(
            secantus.uri,
            database,
            REDIS_URL=redis_server.url,
            KLINE_POLL_SECONDS="600",  # closes can only arrive through Redis
            **exchange_urls(running.port),
        )
        ports = [free_port(), free_port()]
        servers = [daphne(port, env, tmp_path / f"daphne-{port}.log") for port in ports]
        readers = [Reader(port) for port in ports for _ in range(2)]
        ingest = None
        try:
            wait_until(lambda: all(len(r.frames) >= 5 for r in readers), timeout=20, what="the initial frames")
            ingest = manage(["ingest_klines"], env, stdout=open(tmp_path / "ingest.log", "wb"))  # noqa: SIM115
            wait_until(lambda: exchange.close_rounds >= 4, timeout=30, what="four closes")
            total = lambda: sum(len(stored(db, s)) for s in SYMBOLS)  # noqa: E731
            wait_until(lambda: total() >= 20, timeout=30, what="the ingest to store them")
            expected_frames = 5 + sum(len(newest_changes(stored(db, s))) for s in SYMBOLS)
            wait_until(lambda: all(len(r.frames) >= expected_frames for r in readers), timeout=10, what="every push")
            time.sleep(0.5)
        finally:
            if ingest is not None:
                assert stop_process(ingest) == 0
            for reader in readers:
                reader.close()
            for server in servers:
                stop_process(server)
    for symbol in SYMBOLS:
        rows = stored(db, symbol)
        final = build_payload(symbol, [_kline(row) for row in rows][-11:], ZONE)
        for reader in readers:
            frames = reader.coin_frames(symbol)
            assert frames[0]["values"] == []  # connected before anything was stored
            # One frame per change of the newest close, in the order stored, none twice.
            assert [frame["time"][-1] for frame in frames[1:]] == hhmm(newest_changes(rows))
            assert frames[-1] == final


def _open_ms(row: dict) -> int:
    return round(row["open_time"].replace(tzinfo=UTC).timestamp() * 1000)


def _kline(row: dict):
    from klines.binance.parse import ClosedKline

    fields = {name: row[name] for name in ClosedKline.__dataclass_fields__}
    for name, value in fields.items():
        if hasattr(value, "to_decimal"):
            fields[name] = value.to_decimal()
        elif isinstance(value, datetime):
            fields[name] = value.replace(tzinfo=UTC)
    return ClosedKline(**fields)


def test_without_redis_a_new_close_reaches_the_client_within_two_seconds(
    secantus: SecantusServer, database: str, tmp_path: Path
) -> None:
    exchange = SimulatedExchange(symbols=SYMBOLS, speed=30, update_seconds=0.1, max_close_rounds=2)
    db = pymongo.MongoClient(secantus.uri)[database]
    with ExchangeThread(exchange) as running:
        env = service_env(
            secantus.uri,
            database,
            **exchange_urls(running.port),
        )
        port = free_port()
        server = daphne(port, env, tmp_path / "daphne.log")
        reader = Reader(port)
        ingest = manage(["ingest_klines"], env, stdout=open(tmp_path / "ingest.log", "wb"))  # noqa: SIM115

        # The ingest also backfills the history before the first close from REST at start;
        # judge the closes that came from the stream.
        def closes() -> list[dict]:
            sent = {k.open_ms for k in exchange.closed_sent if k.symbol == "XRPUSDT"}
            return [row for row in stored(db, "XRPUSDT") if _open_ms(row) in sent]

        def shown_at(row: dict) -> float | None:
            newest = hhmm([row])  # the first frame whose newest kline is this one
            return next((at for at, f in reader.frames if f["coin"] == "XRPUSDT" and f["time"][-1:] == newest), None)

        try:
            wait_until(lambda: len(closes()) >= 2, timeout=30, what="two closes stored")
            wait_until(lambda: all(shown_at(row) for row in closes()), timeout=5, what="their frames")
        finally:
            assert stop_process(ingest) == 0
            reader.close()
            stop_process(server)
    for row in closes():
        assert shown_at(row) - row["stored_at"].replace(tzinfo=UTC).timestamp() < 2.0


@pytest.mark.parametrize("server_kind", ["daphne", "uvicorn"])
def test_a_client_that_stops_reading_is_closed_and_does_not_hold_up_others(
    server_kind: str, secantus: SecantusServer, database: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    """uvicorn's ``send`` waits while a peer does not read, daphne's buffers: the fan-out must wait for neither."""
    env = service_env(secantus.uri, database, REDIS_URL=redis_server.url, WS_MAX_PENDING_BYTES="65536")
    port = free_port()
    log = tmp_path / f"{server_kind}.log"
    server = (daphne if server_kind == "daphne" else uvicorn)(port, env, log)
    try:
        fast = Reader(port)
        wait_until(lambda: len(fast.frames) >= 5, timeout=20, what="the initial frames")
        slow = websocket.create_connection(
            f"ws://127.0.0.1:{port}/", timeout=10, sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),)
        )  # reads nothing from now on
        # The kernel absorbs a few MB for a peer that does not read before the
        # server's own buffer grows; publish until the server gives up on it.
        slow_closed = lambda: "closing a client that stopped reading" in log.read_text()  # noqa: E731
        published = asyncio.run(publish_closes_until(redis_server.url, "BTCUSDT", slow_closed, first=1, limit=40_000))
        last_time = closed_kline("BTCUSDT", published).open_time.strftime("%H:%M")
        wait_until(
            lambda: fast.coin_frames("BTCUSDT")[-1]["time"][-1] == last_time, timeout=60, what="the newest frame"
        )
        if server_kind == "daphne":  # under uvicorn the close itself waits until the peer reads
            slow.settimeout(10)
            with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
                while True:  # drain what the kernel held; then the connection is gone
                    slow.recv()
        assert fast.closed_with is None
        newcomer = Reader(port)
        wait_until(lambda: len(newcomer.frames) >= 5, timeout=10, what="a new client's frames")
        fast.close()
        newcomer.close()
        slow.close()
    finally:
        stop_process(server)
    assert "Traceback" not in log.read_text()


def test_garbage_from_clients_and_unknown_paths_never_break_the_server(
    secantus: SecantusServer, database: str, tmp_path: Path
) -> None:
    env = service_env(secantus.uri, database)
    store_klines(env, {"BTCUSDT": range(3)})
    port = free_port()
    log = tmp_path / "daphne.log"
    server = daphne(port, env, log)
    try:
        client = Reader(port)
        wait_until(lambda: len(client.frames) >= 5, timeout=20, what="the initial frames")
        for junk in ("", "null", "{", '{"type": "websocket.disconnect"}', "\u0000" * 1000, "x" * 4000):
            client.ws.send(junk)
        client.ws.send_binary(bytes(range(256)) * 10)
        client.ws.ping(b"are you there")
        oversized = Reader(port)  # past the 4 KB input limit: closed with 1009, nobody else is
        wait_until(lambda: len(oversized.frames) >= 5, timeout=10, what="the second client's frames")
        oversized.ws.send("x" * 200_000)
        wait_until(lambda: oversized.closed_with == 1009, timeout=10, what="the oversized message's close")
        for path in ("/nope", "/admin/", "/ws/klines/"):
            with pytest.raises(websocket.WebSocketBadStatusException):
                websocket.create_connection(f"ws://127.0.0.1:{port}{path}", timeout=10)
        store_klines(env, {"BTCUSDT": range(3, 4)})  # the garbage sender still gets the next close
        wait_until(lambda: len(client.frames) >= 6, timeout=10, what="the next close")
        assert client.closed_with is None
        assert len(client.coin_frames("BTCUSDT")[-1]["values"]) == 4
        client.close()
    finally:
        stop_process(server)
    assert "Traceback" not in log.read_text()


def test_serving_survives_a_database_that_is_down_at_start_and_later(tmp_path: Path) -> None:
    data = tmp_path / "db"
    mongo = SecantusServer(data).start()
    env = service_env(mongo.uri, "outage")
    assert manage(["migrate", "--noinput", "-v0"], env).wait(120) == 0
    store_klines(env, {"ETHUSDT": range(4)})
    mongo.stop()

    port = free_port()
    server = daphne(port, env, tmp_path / "daphne.log")
    try:
        early = Reader(port)  # accepted although the database is down
        time.sleep(1.0)
        assert early.frames == [] and early.closed_with is None
        mongo = SecantusServer(data, port=mongo.port).start()
        wait_until(lambda: len(early.frames) >= 5, timeout=30, what="payloads once the database is back")
        assert len(early.coin_frames("ETHUSDT")[0]["values"]) == 4

        mongo.stop()  # lose the database again: the last good payloads are still served
        late = Reader(port)
        wait_until(lambda: len(late.frames) >= 5, timeout=10, what="payloads while the database is down")
        assert [frame for _, frame in late.frames] == [frame for _, frame in early.frames[:5]]
        health, body = urllib_status(f"http://127.0.0.1:{port}/healthz")
        assert health == 503
        assert json.loads(body)["database"] == {"ok": False}  # the driver's message stays in the log
        early.close()
        late.close()
    finally:
        stop_process(server)
        mongo.stop()


def urllib_status(url: str) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
