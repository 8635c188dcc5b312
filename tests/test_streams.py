"""The Binance-protocol streams' contract, against a real daphne on SecantusDB (no Redis: closed klines only)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import websocket

from klines.api.stream_events import encode, kline_event
from klines.binance.parse import datetime_to_ms
from klines.testing.servers import daphne, free_port, service_env, stop_process
from tests.helpers import closed_kline, store_klines

pytestmark = pytest.mark.e2e


class Site:
    def __init__(self, port: int, env: dict[str, str], log: Path) -> None:
        self.port, self.env, self.log = port, env, log

    def connect(self, path: str) -> websocket.WebSocket:
        return websocket.create_connection(f"ws://127.0.0.1:{self.port}{path}", timeout=20)


@pytest.fixture(scope="module")
def site(secantus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    import uuid

    import pymongo

    from tests.helpers import migrate

    database = f"streams_{uuid.uuid4().hex[:8]}"
    migrate(secantus.uri, database)
    env = service_env(secantus.uri, database, KLINE_POLL_SECONDS="0.2")
    store_klines(env, {"BTCUSDT": range(3), "ETHUSDT": range(3)})
    port = free_port()
    log = tmp_path_factory.mktemp("streams") / "daphne.log"
    server = daphne(port, env, log)
    yield Site(port, env, log)
    stop_process(server)
    pymongo.MongoClient(secantus.uri).drop_database(database)
    assert "Traceback" not in log.read_text()


def request(ws: websocket.WebSocket, method: str, params: list | None = None, id_: int = 1) -> dict:
    message: dict = {"method": method, "id": id_}
    if params is not None:
        message["params"] = params
    ws.send(json.dumps(message))
    return json.loads(ws.recv())


def refused(site: Site, path: str) -> websocket.WebSocketBadStatusException:
    with pytest.raises(websocket.WebSocketBadStatusException) as caught:
        site.connect(path)
    return caught.value


def test_subscribe_list_and_unsubscribe_are_answered_as_binance_answers(site: Site) -> None:
    ws = site.connect("/market/ws")
    assert request(ws, "SUBSCRIBE", ["btcusdt@kline_1m"], 1) == {"result": None, "id": 1}
    assert request(ws, "SUBSCRIBE", ["ethusdt@kline_1m", "btcusdt@kline_1m"], 2) == {"result": None, "id": 2}
    assert request(ws, "LIST_SUBSCRIPTIONS", None, 3) == {
        "result": ["btcusdt@kline_1m", "ethusdt@kline_1m"],
        "id": 3,
    }
    assert request(ws, "UNSUBSCRIBE", ["btcusdt@kline_1m"], 4) == {"result": None, "id": 4}
    assert request(ws, "LIST_SUBSCRIPTIONS", [], 5) == {"result": ["ethusdt@kline_1m"], "id": 5}
    ws.close()


def test_streams_named_in_the_url_are_listed(site: Site) -> None:
    ws = site.connect("/market/stream?streams=btcusdt@kline_1m/ethusdt@kline_1m")
    assert request(ws, "LIST_SUBSCRIPTIONS")["result"] == ["btcusdt@kline_1m", "ethusdt@kline_1m"]
    ws.close()
    legacy = site.connect("/ws/ethusdt@kline_1m")
    assert request(legacy, "LIST_SUBSCRIPTIONS")["result"] == ["ethusdt@kline_1m"]
    legacy.close()


def test_the_combined_property_is_set_and_read(site: Site) -> None:
    ws = site.connect("/market/ws")
    assert request(ws, "GET_PROPERTY", ["combined"], 1) == {"result": False, "id": 1}
    assert request(ws, "SET_PROPERTY", ["combined", True], 2) == {"result": None, "id": 2}
    assert request(ws, "GET_PROPERTY", ["combined"], 3) == {"result": True, "id": 3}
    ws.close()


@pytest.mark.parametrize(
    ("message", "reply"),
    [
        ("{not json", {"code": 3}),
        ('{"method": "SUBSCRIBE", "params": ["btcusdt@kline_1m"], "id": -1}', {"code": 2}),
        ('{"method": "FOLLOW", "params": [], "id": 7}', {"code": 2, "id": 7}),
        ('{"method": "SUBSCRIBE", "params": ["dogeusdt@kline_1m"], "id": 8}', {"code": 2, "id": 8}),
        ('{"method": "SUBSCRIBE", "params": ["btcusdt@kline_7m"], "id": 9}', {"code": 2, "id": 9}),
        ('{"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": 10}', {"code": 2, "id": 10}),
        ('{"method": "GET_PROPERTY", "params": ["colour"], "id": 11}', {"code": 0, "id": 11}),
        ('{"method": "SET_PROPERTY", "params": ["combined", "yes"], "id": 12}', {"code": 1, "id": 12}),
    ],
)
def test_an_invalid_request_gets_an_error_reply_and_the_connection_stays_open(
    site: Site, message: str, reply: dict
) -> None:
    ws = site.connect("/market/ws")
    answer = json.loads((ws.send(message), ws.recv())[1])
    assert {k: answer[k] for k in reply} == reply
    assert answer["msg"]
    assert request(ws, "LIST_SUBSCRIPTIONS", None, 99) == {"result": [], "id": 99}  # still open, nothing added
    ws.close()


def test_a_url_naming_a_stream_not_recorded_is_refused_at_the_handshake_with_the_reason(site: Site) -> None:
    refusal = refused(site, "/market/ws/dogeusdt@kline_1m")
    assert refusal.status_code == 400
    assert "DOGEUSDT is not recorded" in str(refusal)
    too_many = "/".join(["btcusdt@kline_1m"] * 2)  # a repeat counts once
    site.connect(f"/market/stream?streams={too_many}").close()


def test_eleven_messages_in_a_second_close_the_connection_with_1008(site: Site) -> None:
    ws = site.connect("/market/ws")
    for i in range(11):
        ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
    while True:
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            break
    assert int.from_bytes(data[:2], "big") == 1008
    ws.close()


def test_a_stored_close_reaches_raw_and_combined_subscribers_once_and_only_after_it_is_stored(site: Site) -> None:
    raw = site.connect("/market/ws/btcusdt@kline_1m")
    combined = site.connect("/market/stream?streams=btcusdt@kline_1m")
    legacy = site.connect("/stream")
    assert request(legacy, "SUBSCRIBE", ["btcusdt@kline_1m"]) == {"result": None, "id": 1}
    assert request(raw, "LIST_SUBSCRIPTIONS")["result"] == ["btcusdt@kline_1m"]  # subscribed before the store
    assert request(combined, "LIST_SUBSCRIPTIONS")["result"] == ["btcusdt@kline_1m"]
    store_klines(site.env, {"BTCUSDT": [3]})
    kline = closed_kline("BTCUSDT", 3)
    event = json.loads(raw.recv())
    expected = kline_event(kline, closed=True, event_ms=event["E"])
    assert event == json.loads(encode(expected))
    assert event["k"]["x"] is True and event["k"]["t"] == datetime_to_ms(kline.open_time)
    for ws in (combined, legacy):
        assert json.loads(ws.recv()) == {"stream": "btcusdt@kline_1m", "data": event}
    # once: the reconciler re-reads the last seconds every poll, and nothing comes again
    raw.settimeout(1.0)
    with pytest.raises(websocket.WebSocketTimeoutException):
        raw.recv()
    for ws in (raw, combined, legacy):
        ws.close()


def test_under_daphne_a_bad_selection_on_the_feed_is_refused_with_http_400_and_the_reason(site: Site) -> None:
    refusal = refused(site, "/?coins=ethusdt&window=501")
    assert refusal.status_code == 400
    assert "window must be a whole number from 1 to 500" in str(refusal)
    ws = site.connect("/?coins=ethusdt&window=2")
    assert json.loads(ws.recv())["coin"] == "ETHUSDT"
    ws.close()
