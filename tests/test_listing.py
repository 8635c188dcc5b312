"""The exchange's listing, end to end with the real ingest: a typo stops it in one line, another exchange's
database is refused, and with KLINE_SYMBOLS=all a new listing is recorded and a delisted symbol dropped."""

from __future__ import annotations

import json
from pathlib import Path

import pymongo
import pytest

from klines.testing.servers import TEST_SOURCE, SecantusServer
from tests.fake_exchange import ExchangeThread
from tests.helpers import Ingest, complete_through, ingest_env, make_exchange, wait_until

pytestmark = pytest.mark.e2e


def exited(ingest: Ingest, timeout: float = 20) -> int:
    assert ingest.process is not None
    return ingest.process.wait(timeout)


def test_a_symbol_the_exchange_does_not_list_stops_the_ingest_in_one_line(
    secantus: SecantusServer, database: str, tmp_path: Path
) -> None:
    fake = make_exchange(["BTCUSDT", "ETHUSDT"])
    with ExchangeThread(fake) as exchange:
        env = ingest_env(secantus.uri, database, exchange, ["btcusdt", "btcusd"])
        ingest = Ingest(env, tmp_path).start()
        try:
            assert exited(ingest) == 1
        finally:
            if ingest.alive():
                ingest.stop()
    errors = [line for line in ingest.log.splitlines() if "btcusd " in line or "btcusd is" in line]
    assert any("KLINE_SYMBOLS: btcusd is not listed" in line for line in errors), ingest.log[-2000:]
    assert "Traceback" not in ingest.log


def test_a_database_fed_by_another_exchange_is_refused_before_any_request(
    secantus: SecantusServer, database: str, tmp_path: Path
) -> None:
    pymongo.MongoClient(secantus.uri)[database]["exchange_source"].insert_one(
        {"record": 1, "source": "binance-usdm", "rest_url": "https://fapi.binance.com", "exchange_info": ""}
    )
    fake = make_exchange(["BTCUSDT"])
    with ExchangeThread(fake) as exchange:
        env = ingest_env(secantus.uri, database, exchange, ["btcusdt"])
        ingest = Ingest(env, tmp_path).start()
        try:
            assert exited(ingest) == 1
        finally:
            if ingest.alive():
                ingest.stop()
    assert (fake.connects, fake.rest_calls) == (0, [])  # nothing was asked of the exchange
    refusals = [line for line in ingest.log.splitlines() if "holds klines from" in line]
    assert refusals == [
        f"CommandError: this database holds klines from binance-usdm, not {TEST_SOURCE} ({exchange.rest_url}); "
        "set MONGO_DATABASE to another database for this exchange (klines of two exchanges never mix)"
    ]
    assert "Traceback" not in ingest.log
    assert pymongo.MongoClient(secantus.uri)[database]["klines"].count_documents({}) == 0


def test_the_same_source_at_another_address_records(secantus: SecantusServer, database: str, tmp_path: Path) -> None:
    """Claimed by this exchange on another port (a second `make simulate`), reached as localhost now."""
    client = pymongo.MongoClient(secantus.uri, tz_aware=True)
    client[database]["exchange_source"].insert_one(
        {"record": 1, "source": TEST_SOURCE, "rest_url": "http://127.0.0.1:9", "exchange_info": ""}
    )
    fake = make_exchange(["BTCUSDT"])
    with ExchangeThread(fake) as exchange:
        local = {"BINANCE_WS_URL": f"ws://localhost:{exchange.port}/market"}
        local["BINANCE_REST_URL"] = f"http://localhost:{exchange.port}"
        ingest = Ingest(ingest_env(secantus.uri, database, exchange, ["btcusdt"], **local), tmp_path).start()
        try:
            target = fake.last_closed_index() + 1
            wait_until(
                lambda: complete_through(client[database]["klines"], "BTCUSDT", target),
                timeout=30,
                what="klines recorded",
            )
        finally:
            ingest.stop()
    assert "holds klines from" not in ingest.log and "Traceback" not in ingest.log
    claim = client[database]["exchange_source"].find_one({})
    assert (claim["source"], claim["rest_url"]) == (TEST_SOURCE, local["BINANCE_REST_URL"])


def test_all_symbols_follows_the_listing_without_a_restart(
    secantus: SecantusServer, database: str, tmp_path: Path
) -> None:
    fake = make_exchange(["BTCUSDT", "ETHUSDT"])
    client = pymongo.MongoClient(secantus.uri, tz_aware=True)
    klines = client[database]["klines"]
    with ExchangeThread(fake) as exchange:
        env = ingest_env(
            secantus.uri, database, exchange, ["btcusdt"], KLINE_SYMBOLS="all", KLINE_SYMBOLS_REFRESH_SECONDS="0.5"
        )
        ingest = Ingest(env, tmp_path).start()
        try:
            target = fake.last_closed_index() + 2
            wait_until(
                lambda: all(complete_through(klines, s, target) for s in ("BTCUSDT", "ETHUSDT")),
                timeout=30,
                what="both listed symbols recorded",
            )
            fake.symbols.append("SOLUSDT")  # a new listing
            fake.delisted.add("ETHUSDT")
            target = fake.last_closed_index() + 2
            wait_until(lambda: complete_through(klines, "SOLUSDT", target), timeout=30, what="the new listing")
            wait_until(lambda: "no longer streaming 1 delisted symbols" in ingest.log, timeout=10, what="delisting")
            settled = fake.last_closed_index() + 1  # what the retired connection still read is stored by then
            wait_until(lambda: complete_through(klines, "BTCUSDT", settled), timeout=30, what="a close after")
            eth_then = klines.count_documents({"symbol": "ETHUSDT"})
            later = fake.last_closed_index() + 3
            wait_until(lambda: complete_through(klines, "BTCUSDT", later), timeout=30, what="more closes")
            assert klines.count_documents({"symbol": "ETHUSDT"}) == eth_then  # kept, no longer recorded
        finally:
            ingest.stop()
    assert "Traceback" not in ingest.log, ingest.log[-3000:]
    stored_info = client[database]["exchange_source"].find_one({})
    listed = [s["symbol"] for s in json.loads(stored_info["exchange_info"])["symbols"] if s["status"] == "TRADING"]
    assert listed == ["BTCUSDT", "SOLUSDT"]
    assert stored_info["rest_url"] == exchange.rest_url
