"""The history backfill's reads (:mod:`klines.store.history`): right answers, each from an index."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connections

from klines.models import Kline
from klines.store.history import count_between, oldest_open_time, stored_at, stored_between
from klines.store.writes import insert_new, save_klines
from tests.conftest import ReadCounter
from tests.helpers import FIELDS, closed_kline
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


def test_insert_new_stores_the_free_keys_names_the_taken_and_writes_the_orms_documents(
    mongo_reads: ReadCounter,
) -> None:
    batch = [closed_kline("BTCUSDT", offset) for offset in range(10)]
    save_klines(batch[:6:2])  # offsets 0, 2, 4 stored by the ORM's bulk_create
    mongo_reads.reads = 0
    added, taken = insert_new(batch)
    assert mongo_reads.reads == 0, "nothing is read before the insert"
    assert [k.open_time for k in taken] == [batch[i].open_time for i in (0, 2, 4)]
    assert [k.open_time for k in added] == [batch[i].open_time for i in (1, 3, 5, 6, 7, 8, 9)]
    rows = list(Kline.objects.filter(symbol="BTCUSDT").order_by("open_time"))
    assert [r.open_time for r in rows] == [k.open_time for k in batch]
    for row, kline in zip(rows, batch, strict=True):
        assert {f: str(getattr(row, f)) for f in FIELDS} == {f: str(getattr(kline, f)) for f in FIELDS}
    collection = connections["default"].get_collection(Kline._meta.db_table)
    shapes = {tuple((k, type(v).__name__) for k, v in sorted(d.items())) for d in collection.find()}
    assert len(shapes) == 1, shapes  # the same document whichever path wrote it
    got = stored_at("btcusdt", "1m", [batch[i].open_time for i in (9, 0, 3)])
    assert sorted(r.open_time for r in got) == [batch[i].open_time for i in (0, 3, 9)]
    mongo_reads.pipelines.clear()
    stored_at("BTCUSDT", "1m", [batch[0].open_time])
    (pipeline,) = mongo_reads.pipelines
    plan = str(_winning_plan(pipeline))
    assert "IXSCAN" in plan and "COLLSCAN" not in plan, plan
