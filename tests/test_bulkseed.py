"""The benchmark's direct bulk load (bench.bulkseed.prepare): a normal SecantusDB then serves the record it built."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pymongo import MongoClient
from pymongo.errors import DuplicateKeyError

from bench.bulkseed import documents, prepare
from klines.store import pipelines
from klines.testing.servers import SecantusServer

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
DATABASE = "bench_direct"


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    directory = tmp_path_factory.mktemp("record")
    meta = prepare(directory, 600, database=DATABASE, symbols=SYMBOLS, interval="1m")
    server = SecantusServer(directory / "data").start()  # the normal configuration: oplog on, as the tests run it
    client = MongoClient(server.uri, tz_aware=True)
    yield meta, client[DATABASE]["klines"], directory
    client.close()
    server.stop()


def test_the_record_holds_every_kline_as_generated(record):
    meta, klines, directory = record
    assert meta["complete"] and meta["klines"] == 600
    assert json.loads((directory / "progress.json").read_text()) == dict.fromkeys(SYMBOLS, 300)
    first_open = datetime.fromtimestamp(meta["first_open_ms"] / 1000, UTC)
    stored = list(klines.find({"symbol": "ETHUSDT"}, {"_id": 0}).sort("open_time", 1))
    assert stored == list(documents("ETHUSDT", "1m", first_open, 300))


def test_the_service_reads_it_through_the_migration_index(record):
    meta, klines, _ = record
    newest = list(klines.aggregate(pipelines.newest_first("BTCUSDT", "1m", 5)))
    assert [k["open_time"].timestamp() * 1000 for k in newest] == [
        meta["first_open_ms"] + (299 - i) * 60_000 for i in range(5)
    ]
    plan = klines.database.command(
        "aggregate", "klines", pipeline=pipelines.newest_first("BTCUSDT", "1m", 5), explain=True
    )["queryPlanner"]["winningPlan"]
    assert plan["inputStage"]["indexName"] == "kline_latest"


def test_the_unique_index_refuses_a_second_copy(record):
    _, klines, _ = record
    copy = klines.find_one({"symbol": "BTCUSDT"}, {"_id": 0})
    with pytest.raises(DuplicateKeyError, match="unique_kline"):
        klines.insert_one(copy)
