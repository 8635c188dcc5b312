"""The ingest records mark-price klines and funding rates from the exchange's REST, exactly as the exchange has
them: the simulated exchange -> ``ingest_klines`` -> SecantusDB (issue 22, part 4). Parsing is pure and strict."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pymongo
import pytest

from klines.binance.derivatives import parse_funding, parse_mark_row
from klines.binance.parse import MalformedMessage
from klines.simexchange.derivatives import rest_funding, rest_mark_klines
from klines.simexchange.server import SimulatedExchange
from klines.testing.servers import SecantusServer, manage
from klines.window import HISTORY
from tests.fake_exchange import ExchangeThread
from tests.helpers import Ingest, ingest_env, migrate, wait_until

SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def test_a_mark_price_row_and_a_funding_entry_parse_to_exact_decimals() -> None:
    row = [1_700_000_000_000, "9653.69440000", "9653.7", "9651.386", "9651.552", "0", 1_700_000_059_999, "0", 60]
    kline = parse_mark_row([*row, "0", "0", "0"], symbol="btcusdt", interval="1m")
    assert (kline.symbol, kline.open, kline.samples) == ("BTCUSDT", Decimal("9653.69440000"), 60)
    entry = {"symbol": "BTCUSDT", "fundingTime": 1_700_000_000_000, "fundingRate": "-0.00037500", "markPrice": ""}
    assert parse_funding(entry).funding_rate == Decimal("-0.00037500")


@pytest.mark.parametrize(
    "bad",
    [[1, "1", "1", "1"], [1, "x", "1", "1", "1", "0", 2, "0", 60], [1, "1", "1", "1", "1", "0", 2, "0", "sixty"]],
)
def test_a_malformed_mark_price_row_is_refused_with_a_reason(bad: list) -> None:
    with pytest.raises(MalformedMessage):
        parse_mark_row(bad, symbol="BTCUSDT", interval="1m")


@pytest.mark.parametrize("bad", [{"symbol": "BTCUSDT", "fundingRate": "0.0001"}, ["BTCUSDT"], {"fundingTime": 1}])
def test_a_malformed_funding_entry_is_refused_with_a_reason(bad: object) -> None:
    with pytest.raises(MalformedMessage):
        parse_funding(bad)


@pytest.fixture
def recorded(secantus: SecantusServer, tmp_path) -> Iterator[tuple[pymongo.database.Database, SimulatedExchange, dict]]:
    database = f"marks_{uuid.uuid4().hex[:8]}"
    migrate(secantus.uri, database)
    exchange = SimulatedExchange(symbols=SYMBOLS)
    with ExchangeThread(exchange) as thread:
        env = ingest_env(secantus.uri, database, thread, SYMBOLS)
        ingest = Ingest(env, tmp_path).start()
        try:
            yield pymongo.MongoClient(secantus.uri)[database], exchange, env
        finally:
            ingest.stop()
    assert "Traceback" not in ingest.log
    pymongo.MongoClient(secantus.uri).drop_database(database)


def ms(document: dict, field: str) -> int:
    return round(document[field].replace(tzinfo=UTC).timestamp() * 1000)


@pytest.mark.e2e
def test_the_ingest_records_mark_prices_at_its_intervals_and_freqtrade_s_and_funding(recorded) -> None:
    db, exchange, _ = recorded

    def caught_up() -> bool:
        marks = [
            db.mark_price_klines.count_documents({"symbol": s, "interval": i}) for s in SYMBOLS for i in ("1m", "1h")
        ]
        return min(marks) >= HISTORY and all(db.funding_rates.count_documents({"symbol": s}) for s in SYMBOLS)

    wait_until(caught_up, timeout=60, what="mark prices and funding recorded", every=0.5)
    for symbol in SYMBOLS:
        for interval in ("1m", "1h"):
            stored = list(db.mark_price_klines.find({"symbol": symbol, "interval": interval}, sort=[("open_time", 1)]))
            first = ms(stored[0], "open_time")
            _, rows = rest_mark_klines(
                exchange, {"symbol": [symbol], "interval": [interval], "startTime": [str(first)]}
            )
            truth = {r[0]: r for r in rows}
            for document in stored:  # closed ones only, each once, digits as the exchange wrote them
                row = truth[ms(document, "open_time")]
                assert ms(document, "close_time") == row[6] < exchange.now_ms()
                assert [str(document[f].to_decimal()) for f in ("open", "high", "low", "close")] == row[1:5]
                assert document["samples"] == row[8]
            assert len({d["open_time"] for d in stored}) == len(stored)
        stored = list(db.funding_rates.find({"symbol": symbol}, sort=[("funding_time", 1)]))
        _, entries = rest_funding(exchange, {"symbol": [symbol], "startTime": [str(ms(stored[0], "funding_time"))]})
        assert [
            {
                "symbol": d["symbol"],
                "fundingTime": ms(d, "funding_time"),
                "fundingRate": str(d["funding_rate"].to_decimal()),
                "markPrice": str(d["mark_price"].to_decimal()),
            }
            for d in stored
        ] == entries


@pytest.mark.e2e
def test_when_backfill_klines_reaches_further_back_the_mark_prices_and_funding_follow(recorded) -> None:
    db, _, env = recorded
    wait_until(lambda: db.funding_rates.count_documents({}) >= 2, timeout=60, what="the ingest's first round")
    since = datetime.now(UTC) - timedelta(days=1)
    args = ["backfill_klines", "--since", f"{since:%Y-%m-%d}", "--symbols", "BTCUSDT", "--quiet"]
    assert manage(args, env).wait(300) == 0
    oldest = db.klines.find_one({"symbol": "BTCUSDT", "interval": "1m"}, sort=[("open_time", 1)])["open_time"]
    assert oldest.replace(tzinfo=UTC) <= since

    def followed() -> bool:
        first = db.mark_price_klines.find_one({"symbol": "BTCUSDT", "interval": "1m"}, sort=[("open_time", 1)])
        funding = db.funding_rates.find_one({"symbol": "BTCUSDT"}, sort=[("funding_time", 1)])
        return first["open_time"] == oldest and funding["funding_time"] - oldest < timedelta(hours=8)

    # At the next close (within a minute), the recorder fetches the range before what it had.
    wait_until(followed, timeout=90, what="mark prices and funding back to the oldest kline", every=1)
    count = db.mark_price_klines.count_documents({"symbol": "BTCUSDT", "interval": "1m", "open_time": {"$gte": oldest}})
    newest = db.mark_price_klines.find_one({"symbol": "BTCUSDT", "interval": "1m"}, sort=[("open_time", -1)])
    assert count == (newest["open_time"] - oldest) // timedelta(minutes=1) + 1  # each minute, once, no hole


def test_kline_mark_prices_is_on_by_default_and_checked() -> None:
    from binancews.config import ConfigError, load_config

    assert load_config({"DJANGO_DEBUG": "true"}).ingest.mark_prices is True
    assert load_config({"DJANGO_DEBUG": "true", "KLINE_MARK_PRICES": "false"}).ingest.mark_prices is False
    with pytest.raises(ConfigError, match="KLINE_MARK_PRICES"):
        load_config({"DJANGO_DEBUG": "true", "KLINE_MARK_PRICES": "maybe"})
