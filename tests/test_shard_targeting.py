"""Every read of the store, explained on SecantusDB: which ones a sharded cluster can send to one shard.

docs/scaling.md proposes the shard key ``{symbol: 1, interval: 1, open_time: 1}``.
mongos sends a read to the shards that own its range only when the query
names the key's prefix with equalities: here, ``symbol`` and ``interval``. This
test explains every pipeline the store sends and asserts that each either
(a) starts with a flat ``$match`` on symbol and interval (equalities) and is
planned on the ``(symbol, interval, open_time)`` index ``kline_latest``, or
(b) is one of the reads known to go to every shard (by ``stored_at``), which
docs/scaling.md lists; a new read of neither kind fails here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from klines.models import Kline
from klines.store import browse
from klines.store.reads import (
    klines_page,
    klines_stored_since,
    last_klines,
    newest_open_time,
    newest_stored_at,
    open_times_between,
    stored_times_between,
)
from klines.store.writes import save_klines
from tests.conftest import ReadCounter
from tests.helpers import closed_kline

pytestmark = pytest.mark.django_db(transaction=True)
SHARD_KEY_INDEX = {"symbol": 1, "interval": 1, "open_time": -1}  # kline_latest: the shard key's fields, in order
BROADCAST = {"klines_stored_since", "newest_stored_at"}  # by stored_at: every shard answers (docs/scaling.md)


def _winning_plan(pipeline: list[dict]) -> dict:
    from django.db import connection

    explained = connection.database.command("aggregate", Kline._meta.db_table, pipeline=pipeline, explain=True)
    return explained["queryPlanner"]["winningPlan"]


def _index_keys(plan: dict) -> list[dict]:
    """Every ``keyPattern`` in a plan tree."""
    found = [plan["keyPattern"]] if "keyPattern" in plan else []
    for child in [plan.get("inputStage"), *plan.get("inputStages", [])]:
        if isinstance(child, dict):
            found += _index_keys(child)
    return found


def test_every_read_names_the_shard_key_prefix_or_is_a_known_broadcast(mongo_reads: ReadCounter) -> None:
    batch = [closed_kline(symbol, offset) for symbol in ("BTCUSDT", "ETHUSDT") for offset in range(30)]
    save_klines(batch)
    newest = batch[-1].open_time
    now = datetime.now(UTC)
    window = browse.Window()
    reads = {
        "last_klines": lambda: last_klines("BTCUSDT", "1m", 11),
        "newest_open_time": lambda: newest_open_time("BTCUSDT", "1m"),
        "open_times_between": lambda: open_times_between("BTCUSDT", "1m", newest - timedelta(hours=1), newest),
        "stored_times_between": lambda: stored_times_between("BTCUSDT", "1m", newest - timedelta(hours=1), newest),
        "klines_page from a start": lambda: klines_page("BTCUSDT", "1m", start=batch[3].open_time, end=newest, limit=5),
        "klines_page up to an end": lambda: klines_page("BTCUSDT", "1m", start=None, end=newest, limit=5),
        "admin page": lambda: browse.page_before([("BTCUSDT", "1m")], 10, cursor=None, window=window, now=now),
        "admin newer page": lambda: browse.page_after(
            [("BTCUSDT", "1m"), ("ETHUSDT", "1m")], 10, cursor=browse.Cursor(newest, "BTCUSDT", "1m"), window=window
        ),
        "klines_stored_since": lambda: klines_stored_since(newest, "1m", ["BTCUSDT"], 100),
        "newest_stored_at": newest_stored_at,
    }
    targeted = []
    for name, read in reads.items():
        mongo_reads.pipelines.clear()
        read()
        assert mongo_reads.pipelines, name
        for pipeline in list(mongo_reads.pipelines):  # explaining one adds to the list
            match = pipeline[0]["$match"]
            keys = _index_keys(_winning_plan(pipeline))
            if name in BROADCAST:
                assert "symbol" not in match and keys == [{"stored_at": 1}], f"{name}: {pipeline} -> {keys}"
                continue
            assert isinstance(match.get("symbol"), str) and isinstance(match.get("interval"), str), (name, pipeline)
            assert keys == [SHARD_KEY_INDEX], f"{name}: {pipeline} -> {keys}"
            targeted.append(name)
    assert set(targeted) == set(reads) - BROADCAST
