"""The history backfill's reads (:mod:`klines.store.history`): right answers, each from an index."""

from __future__ import annotations

from datetime import timedelta

import pytest

from klines.store.history import count_between, oldest_open_time, stored_between
from klines.store.writes import save_klines
from tests.conftest import ReadCounter
from tests.helpers import closed_kline
from tests.test_store import _winning_plan

pytestmark = pytest.mark.django_db(transaction=True)


def test_history_reads_answer_from_an_index(mongo_reads: ReadCounter) -> None:
    batch = [closed_kline(symbol, offset) for symbol in ("BTCUSDT", "ETHUSDT") for offset in range(30)]
    save_klines(batch)
    first, last = batch[0].open_time, batch[29].open_time
    assert count_between("BTCUSDT", "1m", first, last) == 29
    assert count_between("BTCUSDT", "1m", first, last + timedelta(minutes=1)) == 30
    assert [r.open_time for r in stored_between("btcusdt", "1m", batch[3].open_time, batch[5].open_time, 10)] == [
        k.open_time for k in batch[3:6]
    ]
    assert oldest_open_time("ETHUSDT", "1m") == first
    assert oldest_open_time("SOLUSDT", "1m") is None
    reads = {
        "count_between": lambda: count_between("BTCUSDT", "1m", first, last),
        "stored_between": lambda: stored_between("BTCUSDT", "1m", first, last, 30),
        "oldest_open_time": lambda: oldest_open_time("BTCUSDT", "1m"),
    }
    for name, read in reads.items():
        mongo_reads.pipelines.clear()
        read()
        for pipeline in list(mongo_reads.pipelines):
            plan = str(_winning_plan(pipeline))
            assert "IXSCAN" in plan and "COLLSCAN" not in plan, f"{name}: {pipeline} -> {plan}"
