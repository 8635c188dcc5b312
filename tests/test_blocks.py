"""Pages cut from encoded blocks: the very bytes the klines give, blocks only for complete spans,
a hole filled later served as filled, and a page in complete blocks read without a kline document."""

from __future__ import annotations

import dataclasses
import random
import urllib.request
from pathlib import Path

import pymongo
import pytest
from django.db import connection

from klines.api.block_sweep import sweep_series
from klines.api.blocks import BLOCK_ROWS, block_of, complete_blocks, encode_row, page_from_blocks
from klines.api.page_cache import closed, encode
from klines.api.pages import read_page
from klines.api.rows import kline_row
from klines.binance.parse import datetime_to_ms, ms_to_datetime
from klines.models import KlineBlock
from klines.store.blocks import block_starts, blocks_between
from klines.store.reads import klines_page
from klines.store.writes import save_klines
from klines.testing.servers import SecantusServer, daphne, free_port, service_env, stop_process
from tests.conftest import ReadCounter
from tests.helpers import BASE_INDEX, closed_kline, store_klines, wait_until

MINUTE = 60_000
ALIGNED = -BASE_INDEX % BLOCK_ROWS  # the offset where a block's span starts
SPANS = [range(ALIGNED + k * BLOCK_ROWS, ALIGNED + (k + 1) * BLOCK_ROWS) for k in range(3)]
HOLE = range(SPANS[1].start + 80, SPANS[1].start + 85)
FIRST = SPANS[0].start


def ms(offset: int) -> int:
    return (BASE_INDEX + offset) * MINUTE


def truth(opens: list[int], rows: list[bytes], *, start_ms: int | None, end_ms: int, limit: int) -> bytes:
    """What the klines answer: the oldest ``limit`` in [start, end], or the newest ``limit`` up to end."""
    chosen = [r for o, r in zip(opens, rows, strict=True) if (start_ms is None or o >= start_ms) and o <= end_ms]
    chosen = chosen[:limit] if start_ms is not None else chosen[-limit:]
    return b"[" + b",".join(chosen) + b"]"


def test_a_page_cut_from_blocks_is_what_the_rows_give() -> None:
    step, rng = 60_000, random.Random(5)
    first = 1_000 * BLOCK_ROWS * step
    opens = [first + i * step for i in range(3 * BLOCK_ROWS)]
    rows = [encode_row([o, "1." + "0" * rng.randrange(9), rng.randrange(10**6)]) for o in opens]
    blocks = [block_of(opens[k * BLOCK_ROWS], rows[k * BLOCK_ROWS : (k + 1) * BLOCK_ROWS]) for k in range(3)]
    cut = 0
    for _ in range(3000):
        limit = rng.choice([1, 2, 499, 500, 501, 1000, 1500])
        start = rng.choice([None, first + rng.randrange(-3, 3 * BLOCK_ROWS + 3) * step + rng.choice([0, -1, 1])])
        end = first + rng.randrange(-3, 3 * BLOCK_ROWS + 3) * step + rng.choice([0, -1, 1, 10**9])
        found = page_from_blocks(blocks, step, start_ms=start, end_ms=end, limit=limit)
        if found is not None:
            cut += 1
            body, page_opens = found
            assert body == truth(opens, rows, start_ms=start, end_ms=end, limit=limit), (start, end, limit)
            assert body.count(b"],[") == len(page_opens) - 1
    assert cut > 1000  # most pages inside the blocks are cut from them
    assert page_from_blocks([blocks[0], blocks[2]], step, start_ms=first, end_ms=first * 2, limit=1500) is None


def test_a_span_with_a_hole_or_a_missing_row_makes_no_block() -> None:
    step = 60_000
    opens = [i * step for i in range(2 * BLOCK_ROWS)]
    rows = [encode_row([o]) for o in opens]
    assert [b.first_open_ms for b in complete_blocks(opens, rows, step)] == [0, BLOCK_ROWS * step]
    holed = opens[:10] + opens[11:]
    assert [b.first_open_ms for b in complete_blocks(holed, rows[:10] + rows[11:], step)] == [BLOCK_ROWS * step]
    assert complete_blocks(opens[1:], rows[1:], step)[0].first_open_ms == BLOCK_ROWS * step


def store(offsets: list[int] | range, symbol: str = "BTCUSDT") -> None:
    save_klines([closed_kline(symbol, offset) for offset in offsets])


def reference(key: tuple) -> tuple[bytes, bool]:
    """The page as the mirror answered it before blocks: the klines, through the current encoder."""
    symbol, interval, start_ms, end_ms, limit = key
    start = ms_to_datetime(start_ms) if start_ms is not None else None
    records = klines_page(symbol, interval, start=start, end=ms_to_datetime(end_ms), limit=limit)
    opens = [datetime_to_ms(k.open_time) for k in records]
    return encode(kline_row(k) for k in records), closed(opens, MINUTE, start_ms=start_ms, end_ms=end_ms, limit=limit)


KEYS = [
    ("BTCUSDT", "1m", ms(FIRST), ms(SPANS[2][-1]) + 1, 1500),
    ("BTCUSDT", "1m", ms(FIRST + 7), ms(SPANS[2][-1]), 400),
    ("BTCUSDT", "1m", ms(FIRST - 30), ms(SPANS[2][-1]), 100),
    ("BTCUSDT", "1m", ms(SPANS[1].start - 3), ms(SPANS[2][-1]), 1500),
    ("BTCUSDT", "1m", ms(HOLE.start - 2), ms(SPANS[2][-1]), 20),
    ("BTCUSDT", "1m", ms(SPANS[2].start + 10), ms(SPANS[2][-1] + 100), 1000),
    ("BTCUSDT", "1m", None, ms(SPANS[2][-1] - 1) + 59_999, 700),
    ("BTCUSDT", "1m", None, ms(SPANS[0][-1]), 500),
    ("BTCUSDT", "1m", ms(SPANS[0].start), ms(SPANS[0][-1]), 1500),
]


@pytest.mark.django_db(transaction=True)
def test_pages_are_the_klines_bytes_before_and_after_a_hole_is_filled(mongo_reads: ReadCounter) -> None:
    store([o for span in SPANS for o in span if o not in HOLE])
    for _ in range(2):  # the first read builds the blocks, the second is cut from them
        for key in KEYS:
            page = read_page(key)
            assert (page.body, page.closed) == reference(key), key
    # No block for the span with the hole: a backfill may still fill it.
    assert block_starts("BTCUSDT", "1m") == [ms(SPANS[0].start), ms(SPANS[2].start)]

    store(HOLE)  # the repair fills it
    for key in KEYS:
        page = read_page(key)
        assert (page.body, page.closed) == reference(key), key
    assert block_starts("BTCUSDT", "1m") == [ms(span.start) for span in SPANS]

    mongo_reads.commands.clear()
    page = read_page(KEYS[0])
    assert [collection for _, collection, _ in mongo_reads.commands] == [KlineBlock._meta.db_table]
    assert page.closed and page.body == reference(KEYS[0])[0]


@pytest.mark.django_db(transaction=True)
def test_the_sweep_stores_each_complete_span_once() -> None:
    store([o for span in SPANS for o in span if o not in HOLE] + list(range(SPANS[2].stop, SPANS[2].stop + 9)))
    store(range(FIRST - 5000, FIRST - 5000 + BLOCK_ROWS + 20))  # older history past a long gap
    waits = []
    stored = sweep_series("BTCUSDT", "1m", lambda: waits.append(1))
    older = ms(FIRST - 5000) + (-(FIRST - 5000 + BASE_INDEX) % BLOCK_ROWS) * MINUTE
    assert block_starts("BTCUSDT", "1m") == [older, ms(SPANS[0].start), ms(SPANS[2].start)]
    assert stored == 3 and waits
    assert sweep_series("BTCUSDT", "1m", lambda: None) == 0
    store(HOLE)
    assert sweep_series("BTCUSDT", "1m", lambda: None) == 1


@pytest.mark.django_db(transaction=True)
def test_block_reads_are_answered_from_an_index(mongo_reads: ReadCounter) -> None:
    store(SPANS[0])
    read_page(KEYS[-1])
    mongo_reads.pipelines.clear()
    blocks_between("BTCUSDT", "1m", ms(FIRST) - 1, ms(SPANS[2][-1]))
    block_starts("BTCUSDT", "1m")
    assert len(mongo_reads.pipelines) == 2
    for pipeline in list(mongo_reads.pipelines):
        command = ("aggregate", KlineBlock._meta.db_table)
        explained = connection.database.command(*command, pipeline=pipeline, explain=True)
        plan = str(explained["queryPlanner"]["winningPlan"])
        assert "IXSCAN" in plan and "COLLSCAN" not in plan, f"{pipeline} -> {plan}"


@pytest.mark.django_db(transaction=True)
def test_with_blocks_off_pages_are_read_from_the_klines_and_build_nothing(settings, mongo_reads: ReadCounter) -> None:
    settings.BINANCEWS = dataclasses.replace(settings.BINANCEWS, blocks=False)
    store(SPANS[0])
    mongo_reads.commands.clear()
    page = read_page(KEYS[-1])
    assert {collection for _, collection, _ in mongo_reads.commands} == {"klines"}
    assert (page.body, page.closed) == reference(KEYS[-1])
    assert block_starts("BTCUSDT", "1m") == []


@pytest.mark.e2e
def test_a_serving_daphne_encodes_the_record_into_blocks_once_pages_stop(
    secantus: SecantusServer, database: str, tmp_path: Path
) -> None:
    env = service_env(secantus.uri, database, KLINE_SYMBOLS="btcusdt", KLINE_INTERVAL="1m")
    store_klines(env, {"BTCUSDT": [o for span in SPANS for o in span if o not in HOLE]}, batch=True)
    port = free_port()
    process = daphne(port, env, tmp_path / "daphne.log", timeout=60)
    try:
        page = f"/fapi/v1/klines?symbol=BTCUSDT&interval=1m&startTime={ms(FIRST)}&limit=3"  # inside no block
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{page}", timeout=30) as response:
            assert response.status == 200
        blocks = pymongo.MongoClient(secantus.uri, tz_aware=True)[database][KlineBlock._meta.db_table]
        wait_until(lambda: blocks.count_documents({}) == 2, timeout=60, what="the sweep's two complete blocks")
        assert sorted(d["block_start"].timestamp() * 1000 for d in blocks.find()) == [
            ms(SPANS[0].start),
            ms(SPANS[2].start),
        ]
    finally:
        stop_process(process)
