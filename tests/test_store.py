"""Storage against a real SecantusDB server."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError

from klines.binance.parse import ClosedKline
from klines.models import Kline
from klines.store.reads import (
    count_between,
    klines_in_batches,
    klines_page,
    klines_stored_since,
    last_klines,
    newest_open_time,
    newest_stored_at,
    oldest_open_time,
    open_times_between,
    stored_times_between,
)
from klines.store.writes import save_kline, save_klines
from tests.conftest import ReadCounter
from tests.helpers import closed_kline

pytestmark = pytest.mark.django_db(transaction=True)


def test_saved_kline_reads_back_with_exact_decimals() -> None:
    kline = closed_kline()
    save_kline(kline)
    row = Kline.objects.get(symbol="BTCUSDT")
    assert ClosedKline(**{name: getattr(row, name) for name in ClosedKline.__dataclass_fields__}) == kline
    assert row.stored_at is not None


def test_decimals_keep_digits_a_float_would_lose() -> None:
    kline = ClosedKline(**{**closed_kline().as_fields(), "close": Decimal("0.30000000000000000001")})
    save_kline(kline)
    assert Kline.objects.get().close == Decimal("0.30000000000000000001")  # stored as Decimal128
    kline = ClosedKline(**{**closed_kline(offset=1).as_fields(), "volume": Decimal("0.1") + Decimal("0.2")})
    save_kline(kline)
    assert Kline.objects.get(open_time=kline.open_time).volume == Decimal("0.3")


def test_saving_the_same_kline_twice_stores_one_row() -> None:
    kline = closed_kline()
    assert save_kline(kline) is not None
    assert save_kline(kline) is None
    assert Kline.objects.count() == 1


def test_unique_constraint_rejects_a_second_row_for_the_same_open_time() -> None:
    Kline.objects.create(**closed_kline().as_fields())
    with pytest.raises(IntegrityError):
        Kline.objects.create(**{**closed_kline().as_fields(), "close": Decimal("1")})


def test_same_open_time_for_another_symbol_is_a_different_kline() -> None:
    save_kline(closed_kline("BTCUSDT"))
    save_kline(closed_kline("ETHUSDT"))
    assert Kline.objects.count() == 2


def test_save_klines_stores_a_batch_and_returns_it() -> None:
    batch = [closed_kline(symbol) for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT")]
    assert save_klines(batch) == batch
    assert Kline.objects.count() == 3


def test_save_klines_skips_the_ones_already_stored_and_stores_the_rest() -> None:
    batch = [closed_kline("BTCUSDT", offset) for offset in range(6)]
    save_kline(batch[1])
    save_kline(batch[4])
    assert save_klines(batch) == [batch[0], batch[2], batch[3], batch[5]]
    assert Kline.objects.count() == 6


def test_save_klines_of_a_replayed_batch_stores_nothing() -> None:
    batch = [closed_kline("BTCUSDT", offset) for offset in range(4)]
    save_klines(batch)
    assert save_klines(batch) == []
    assert save_klines([]) == []
    assert Kline.objects.count() == 4


def test_two_writers_racing_on_the_same_klines_each_store_and_report_a_kline_once() -> None:
    """Two ingests (failover) store the same closes: only the writer that stored one publishes it."""
    from django.db import connections

    def write(batch: list[ClosedKline], results: list[list[ClosedKline]]) -> None:
        start.wait()
        try:
            results.append(save_klines(batch))
        finally:
            connections.close_all()

    for round_ in range(6):
        klines = [closed_kline(symbol, round_ * 40 + i) for symbol in ("BTCUSDT", "ETHUSDT") for i in range(40)]
        batches = [klines, klines[round_ * 3 :]]  # the same closes, or one writer a little behind
        start = threading.Barrier(2)
        results: list[list[ClosedKline]] = []
        threads = [threading.Thread(target=write, args=(batch, results)) for batch in batches]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        reported = [k.key for result in results for k in result]
        assert sorted(reported) == sorted(k.key for k in klines), f"round {round_}: each kline reported once"
        assert Kline.objects.filter(open_time__in=[k.open_time for k in klines]).count() == len(klines)


def test_last_klines_returns_newest_oldest_first_for_one_symbol() -> None:
    for offset in (3, 0, 14, 7, 1, 2, 4, 5, 6, 8, 9, 10, 11, 12, 13):
        save_kline(closed_kline("BTCUSDT", offset))
    save_kline(closed_kline("ETHUSDT", 20))
    rows = last_klines("btcusdt", "1m", 11)
    assert [r.open_time for r in rows] == [closed_kline("BTCUSDT", o).open_time for o in range(4, 15)]


def test_last_klines_widens_its_window_past_a_gap_and_never_invents() -> None:
    recent = [closed_kline("BTCUSDT", offset) for offset in range(600, 605)]  # 5 klines after a 10 h gap
    older = [closed_kline("BTCUSDT", offset) for offset in range(10)]
    save_klines(older + recent)
    just_after = recent[-1].open_time + timedelta(minutes=1)
    rows = last_klines("BTCUSDT", "1m", 11, now=just_after)
    assert [r.open_time for r in rows] == [k.open_time for k in older[-6:] + recent]
    assert [r.open_time for r in last_klines("BTCUSDT", "1m", 11)] == [r.open_time for r in rows]  # a year later
    assert len(last_klines("BTCUSDT", "1m", 40, now=just_after)) == 15


def test_newest_stored_at_finds_the_latest_write_however_old() -> None:
    assert newest_stored_at() is None
    save_klines([closed_kline("BTCUSDT", 0)])
    save_klines([closed_kline("ETHUSDT", 0)])
    newest = Kline.objects.get(symbol="ETHUSDT").stored_at
    assert newest_stored_at() == newest
    assert newest_stored_at(now=newest + timedelta(days=400)) == newest


HOUR = timedelta(hours=1)


def test_newest_open_time_before_a_moment_and_the_stored_times() -> None:
    save_klines([closed_kline("BTCUSDT", offset) for offset in (0, 1, 5)])
    five = closed_kline("BTCUSDT", 5).open_time
    assert newest_open_time("BTCUSDT", "1m", before=five) == closed_kline("BTCUSDT", 1).open_time
    assert newest_open_time("BTCUSDT", "1m", before=closed_kline("BTCUSDT", 0).open_time) is None
    assert newest_open_time("BTCUSDT", "1m") == five
    rows = stored_times_between("BTCUSDT", "1m", closed_kline("BTCUSDT", 1).open_time, five + timedelta(minutes=1))
    assert [open_time for open_time, _ in rows] == [closed_kline("BTCUSDT", 1).open_time, five]
    assert all(stored_at == Kline.objects.get(open_time=t).stored_at for t, stored_at in rows)


def test_klines_in_batches_reads_a_range_in_bounded_batches_across_a_hole(mongo_reads: ReadCounter) -> None:
    save_klines([closed_kline("BTCUSDT", offset) for offset in [*range(0, 10), *range(500, 515)]])
    start, end = closed_kline("BTCUSDT", 2).open_time, closed_kline("BTCUSDT", 512).open_time
    mongo_reads.reads = 0
    batches = list(klines_in_batches("BTCUSDT", "1m", start, end, 4))
    assert [len(rows) for rows in batches] == [4, 4, 4, 4, 4, 1]  # the last is shorter: the end
    offsets = [*range(2, 10), *range(500, 513)]
    assert [row.open_time for rows in batches for row in rows] == [
        closed_kline("BTCUSDT", o).open_time for o in offsets
    ]
    assert mongo_reads.reads <= 2 * len(batches)  # a page across the hole widens once


def _winning_plan(pipeline: list[dict]) -> dict:
    from django.db import connection

    explained = connection.database.command("aggregate", Kline._meta.db_table, pipeline=pipeline, explain=True)
    return explained["queryPlanner"]["winningPlan"]


def test_every_read_the_store_sends_is_answered_from_an_index(mongo_reads: ReadCounter) -> None:
    """Django's own pipelines for these reads made SecantusDB scan the whole collection."""
    batch = [closed_kline(symbol, offset) for symbol in ("BTCUSDT", "ETHUSDT") for offset in range(30)]
    save_klines(batch)
    newest = batch[-1].open_time
    reads = {
        "last_klines": lambda: last_klines("BTCUSDT", "1m", 11),
        "newest_open_time": lambda: newest_open_time("BTCUSDT", "1m"),
        "open_times_between": lambda: open_times_between("BTCUSDT", "1m", newest - timedelta(hours=1), newest),
        "stored_times_between": lambda: stored_times_between("BTCUSDT", "1m", newest - timedelta(hours=1), newest),
        "newest_open_time before": lambda: newest_open_time("BTCUSDT", "1m", before=newest - timedelta(minutes=5)),
        "oldest_open_time": lambda: oldest_open_time("BTCUSDT", "1m"),
        "oldest_open_time before": lambda: oldest_open_time("BTCUSDT", "1m", before=newest),
        "count_between": lambda: count_between("BTCUSDT", "1m", newest - timedelta(hours=1), newest),
        "klines_stored_since": lambda: klines_stored_since(newest, "1m", ["BTCUSDT"], 100),
        "newest_stored_at": newest_stored_at,
        "klines_page from a start": lambda: klines_page("BTCUSDT", "1m", start=batch[3].open_time, end=newest, limit=5),
        "klines_page up to an end": lambda: klines_page("BTCUSDT", "1m", start=None, end=newest, limit=5),
        "klines_page past a hole": lambda: klines_page("ETHUSDT", "1m", start=newest, end=newest + HOUR, limit=5),
        "klines_in_batches": lambda: list(klines_in_batches("ETHUSDT", "1m", batch[0].open_time, newest, 7)),
        "save_klines of a replayed batch": lambda: save_klines([batch[0], closed_kline("SOLUSDT"), batch[31]]),
    }
    for name, read in reads.items():
        mongo_reads.pipelines.clear()
        read()
        assert mongo_reads.pipelines, name
        for pipeline in list(mongo_reads.pipelines):  # explaining one adds to the list
            plan = str(_winning_plan(pipeline))
            assert "IXSCAN" in plan and "COLLSCAN" not in plan, f"{name}: {pipeline} -> {plan}"
