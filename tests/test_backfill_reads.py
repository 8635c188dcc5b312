"""``PairBackfill`` in this process against the simulated exchange: which reads an import costs the database."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from klines.binance.archive_csv import ArchiveError
from klines.binance.parse import datetime_to_ms
from klines.binance.rest import BinanceRest
from klines.history.plan import PairSummary
from klines.history.run import PairBackfill, Sources, prefetched
from tests.conftest import ReadCounter
from tests.fake_exchange import ExchangeThread, FaultyExchange

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2022, 1, 3, 2, 0, 30, tzinfo=UTC)


@pytest.fixture
def exchange() -> Iterator[ExchangeThread]:
    fake = FaultyExchange(symbols=["btcusdt"], intervals=("1h",), update_seconds=1.0, start_ms=datetime_to_ms(NOW))
    with ExchangeThread(fake) as thread:
        yield thread


def backfill(exchange: ExchangeThread, since: datetime) -> tuple[PairSummary, list[str]]:
    """One run for BTCUSDT 1h from ``since``; its summary and its notes (one per unit that was fetched)."""
    rest = BinanceRest(exchange.rest_url, weight_per_minute=2400, stop=threading.Event())
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as directory, httpx.Client(timeout=30.0) as client:
        sources = Sources(rest=rest, archive_url=exchange.rest_url, client=client, directory=Path(directory))
        pair = PairBackfill("btcusdt", "1h", sources=sources, server_ms=rest.server_time_ms(), note=notes.append)
        start, end = pair.plan(since, None, onboard_ms=0)
        summary = pair.run(start, end)
    rest.close()
    return summary, notes


def test_a_fresh_import_reads_one_count_per_unit_and_nothing_else(
    exchange: ExchangeThread, mongo_reads: ReadCounter
) -> None:
    since = datetime(2021, 12, 30, tzinfo=UTC)
    mongo_reads.pipelines.clear()
    summary, notes = backfill(exchange, since)
    assert summary.missing == [] and summary.differing == 0 and summary.already == 0
    assert summary.from_archive > 0 and summary.from_rest > 0
    assert summary.oldest == since
    assert summary.newest == NOW.replace(minute=0, second=0) - timedelta(hours=1)
    counts = [p for p in mongo_reads.pipelines if "$count" in str(p)]
    assert counts == mongo_reads.pipelines, "only the 'is this unit complete?' counts"
    assert len(counts) == len(notes), notes  # one per unit: none again after a unit got all its klines


def test_a_second_run_over_a_complete_range_reads_one_count_per_unit(
    exchange: ExchangeThread, mongo_reads: ReadCounter
) -> None:
    since = datetime(2021, 12, 30, tzinfo=UTC)
    first, units = backfill(exchange, since)
    mongo_reads.pipelines.clear()
    again, notes = backfill(exchange, since)
    assert (again.from_archive, again.from_rest, again.missing) == (0, 0, [])
    assert again.already == first.from_archive + first.from_rest
    assert (again.oldest, again.newest) == (first.oldest, first.newest)
    assert notes == [] and len(mongo_reads.pipelines) == len(units)


def test_prefetched_keeps_the_order_and_reraises_the_readers_error() -> None:
    def batches() -> Iterator[int]:
        yield from range(5)
        raise ArchiveError("BTCUSDT-1m-2024-01.zip: row 7 does not parse")

    got: list[int] = []
    with pytest.raises(ArchiveError, match="row 7"):
        for item in prefetched(batches()):
            got.append(item)
    assert got == [0, 1, 2, 3, 4]
    assert list(prefetched(iter(()))) == []
