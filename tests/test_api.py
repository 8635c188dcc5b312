"""The Binance-compatible HTTP mirror, against a real daphne: every rule of ``/fapi/v1/klines``, the other
endpoints, Binance's errors, and three widely used Binance clients pointed at it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pymongo
import pytest

from klines.simexchange.exchange_info import exchange_info
from klines.testing.servers import SecantusServer, daphne, free_port, manage, service_env, stop_process
from tests.helpers import BASE_INDEX, SERIES, migrate, store_klines

pytestmark = pytest.mark.e2e
MINUTE_MS = 60_000
START_MS = BASE_INDEX * MINUTE_MS  # open time of offset 0
BTC_OFFSETS = range(30)
ETH_OFFSETS = [*range(0, 5), *range(20, 25)]  # a 15-minute hole in the record


def truth(symbol: str, offsets: Any) -> list[list[Any]]:
    """The exchange's own rows for these minutes: what the mirror must answer, digit for digit."""
    return [SERIES.kline(symbol, BASE_INDEX + offset).rest_row() for offset in offsets]


class Mirror:
    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str, method: str = "GET") -> tuple[int, Any, str]:
        request = urllib.request.Request(self.url + path, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                body = response.read()
                return response.status, json.loads(body), response.headers["Content-Type"]
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read()), exc.headers["Content-Type"]

    def klines(self, **params: Any) -> Any:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        status, body, _ = self.get(f"/fapi/v1/klines?{query}")
        assert status == 200, body
        return body


def exchange_info_body() -> str:
    ticks = [(s, SERIES.tick(s)) for s in ("BTCUSDT", "ETHUSDT")]
    return json.dumps(exchange_info(ticks, server_ms=START_MS))


@pytest.fixture(scope="module")
def mirror(secantus: SecantusServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirror]:
    database = f"api_{uuid.uuid4().hex[:8]}"
    migrate(secantus.uri, database)
    env = service_env(secantus.uri, database, KLINE_SYMBOLS="btcusdt,ethusdt", KLINE_INTERVAL="1m")
    store_klines(env, {"BTCUSDT": BTC_OFFSETS, "ETHUSDT": ETH_OFFSETS})
    code = (
        "from klines.store.exchange import claim_record, save_exchange_info\n"
        "claim_record('binance-usdm', rest_url='https://fapi.binance.com')\n"
        f"save_exchange_info({exchange_info_body()!r})\n"
    )
    assert manage(["shell", "--no-imports", "-c", code], env).wait(60) == 0
    port = free_port()
    process = daphne(port, env, tmp_path_factory.mktemp("api") / "daphne.log")
    yield Mirror(f"http://127.0.0.1:{port}")
    stop_process(process)
    pymongo.MongoClient(secantus.uri).drop_database(database)


def test_without_times_the_newest_klines_in_binance_s_row_format(mirror: Mirror) -> None:
    assert mirror.klines(symbol="BTCUSDT", interval="1m", limit=5) == truth("BTCUSDT", range(25, 30))


def test_the_default_limit_is_500_and_the_whole_record_fits(mirror: Mirror) -> None:
    assert mirror.klines(symbol="BTCUSDT", interval="1m") == truth("BTCUSDT", BTC_OFFSETS)


def test_start_time_pages_forward_from_the_oldest_kline_at_or_after_it(mirror: Mirror) -> None:
    first = mirror.klines(symbol="BTCUSDT", interval="1m", startTime=START_MS + 3 * MINUTE_MS - 1, limit=4)
    assert first == truth("BTCUSDT", range(3, 7))
    following = mirror.klines(symbol="BTCUSDT", interval="1m", startTime=first[-1][0] + 1, limit=4)
    assert following == truth("BTCUSDT", range(7, 11))


def test_end_time_alone_gives_the_newest_klines_opened_at_or_before_it(mirror: Mirror) -> None:
    rows = mirror.klines(symbol="BTCUSDT", interval="1m", endTime=START_MS + 10 * MINUTE_MS, limit=3)
    assert rows == truth("BTCUSDT", range(8, 11))


def test_start_and_end_bound_the_page(mirror: Mirror) -> None:
    rows = mirror.klines(symbol="BTCUSDT", interval="1m", startTime=START_MS, endTime=START_MS + 2 * MINUTE_MS)
    assert rows == truth("BTCUSDT", range(3))


def test_a_page_continues_across_a_hole_in_the_record(mirror: Mirror) -> None:
    assert mirror.klines(symbol="ETHUSDT", interval="1m", startTime=START_MS + 3 * MINUTE_MS, limit=4) == truth(
        "ETHUSDT", [3, 4, 20, 21]
    )
    assert mirror.klines(symbol="ETHUSDT", interval="1m", endTime=START_MS + 21 * MINUTE_MS, limit=4) == truth(
        "ETHUSDT", [3, 4, 20, 21]
    )


def test_nothing_after_the_record_is_an_empty_page(mirror: Mirror) -> None:
    assert mirror.klines(symbol="BTCUSDT", interval="1m", startTime=START_MS + 31 * MINUTE_MS) == []


def test_decimals_come_back_exactly_as_the_exchange_wrote_them(mirror: Mirror) -> None:
    rows = mirror.klines(symbol="BTCUSDT", interval="1m", limit=30)
    for row in rows:
        for text in row[1:6] + row[7:8] + row[9:11]:
            assert isinstance(text, str) and "E" not in text
    assert [Decimal(r[4]) for r in rows] == [Decimal(r[4]) for r in truth("BTCUSDT", BTC_OFFSETS)]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("interval=1m", -1102),
        ("symbol=BTCUSDT", -1102),
        ("symbol=BTCUSDT&interval=1m&limit=ten", -1100),
        ("symbol=BTCUSDT&interval=1m&startTime=yesterday", -1100),
        ("symbol=BTCUSDT&interval=1m&limit=1501", -1130),
        ("symbol=BTCUSDT&interval=1m&limit=0", -1130),
        ("symbol=BTCUSDT&interval=1m&startTime=2&endTime=1", -1023),
        ("symbol=DOGEUSDT&interval=1m", -1121),
        ("symbol=BTCUSDT&interval=1h", -1120),
    ],
)
def test_bad_parameters_get_binance_s_error(mirror: Mirror, query: str, code: int) -> None:
    status, body, content_type = mirror.get(f"/fapi/v1/klines?{query}")
    assert (status, body["code"], content_type) == (400, code, "application/json")
    assert isinstance(body["msg"], str) and body["msg"]


def test_time_ping_and_exchange_info(mirror: Mirror) -> None:
    status, body, _ = mirror.get("/fapi/v1/time")
    assert status == 200 and isinstance(body["serverTime"], int)
    assert mirror.get("/fapi/v1/ping")[:2] == (200, {})
    status, body, _ = mirror.get("/fapi/v1/exchangeInfo")
    assert status == 200 and body == json.loads(exchange_info_body())


def test_unknown_paths_and_methods_under_fapi_get_a_json_error(mirror: Mirror) -> None:
    status, body, content_type = mirror.get("/fapi/v1/depth?symbol=BTCUSDT")
    assert (status, body["code"], content_type) == (404, -5000, "application/json")
    status, body, _ = mirror.get("/fapi/v1/klines?symbol=BTCUSDT&interval=1m", method="POST")
    assert (status, body["code"]) == (405, -5000)


def test_without_a_database_the_mirror_answers_a_json_503(tmp_path: Path) -> None:
    env = service_env(f"mongodb://127.0.0.1:{free_port()}/?directConnection=true", "nowhere")
    port = free_port()
    process = daphne(port, env, tmp_path / "daphne.log")
    try:
        status, body, _ = Mirror(f"http://127.0.0.1:{port}").get("/fapi/v1/klines?symbol=BTCUSDT&interval=1m")
    finally:
        stop_process(process)
    assert (status, body["code"]) == (503, -1001)


# -- third-party clients, on their default code paths, pointed at the mirror ------------------------


def test_python_binance_reads_the_record(mirror: Mirror) -> None:
    from binance.client import Client

    client = Client(ping=False)
    client.FUTURES_URL = f"{mirror.url}/fapi"
    rows = client.futures_klines(symbol="BTCUSDT", interval="1m", startTime=START_MS, limit=10)
    assert rows == truth("BTCUSDT", range(10))
    assert client.futures_exchange_info()["symbols"][0]["symbol"] == "BTCUSDT"


def test_binance_s_official_connector_reads_the_record(mirror: Mirror) -> None:
    from binance.um_futures import UMFutures

    client = UMFutures(base_url=mirror.url)
    assert client.klines("ETHUSDT", "1m", startTime=START_MS, limit=6) == truth("ETHUSDT", [0, 1, 2, 3, 4, 20])
    assert client.time()["serverTime"] > 0


def test_ccxt_loads_markets_and_fetches_ohlcv(mirror: Mirror) -> None:
    import ccxt

    exchange = ccxt.binanceusdm()
    for api in ("fapiPublic", "fapiPublicV2", "fapiPublicV3"):
        exchange.urls["api"][api] = f"{mirror.url}/fapi/{api.removeprefix('fapiPublic').lower() or 'v1'}"
    markets = exchange.load_markets()
    assert "BTC/USDT:USDT" in markets
    candles = exchange.fetch_ohlcv("BTC/USDT:USDT", "1m", since=START_MS, limit=5)
    expected = [[r[0], *(float(v) for v in r[1:6])] for r in truth("BTCUSDT", range(5))]
    assert candles == expected
