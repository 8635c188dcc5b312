"""The writer: store from a bounded queue, drop loudly when full, report what is left at exit."""

from __future__ import annotations

import logging
import time

import pytest
from django.db import DatabaseError

from klines.binance.parse import ClosedKline
from klines.ingest.writer import KlineWriter
from klines.models import Kline
from tests.helpers import closed_kline


@pytest.mark.django_db(transaction=True)
def test_writer_stores_each_kline_once_and_reports_it() -> None:
    stored: list[ClosedKline] = []
    writer = KlineWriter(capacity=10, on_stored=stored.extend)
    writer.start()
    for offset in (0, 1, 1, 2):
        assert writer.offer(closed_kline("BTCUSDT", offset))
    assert writer.close(deadline=time.monotonic() + 5) == 0
    assert Kline.objects.count() == 3
    assert [k.open_time for k in stored] == [closed_kline("BTCUSDT", o).open_time for o in (0, 1, 2)]
    assert (writer.stats.stored, writer.stats.duplicates, writer.stats.dropped) == (3, 1, 0)
    assert writer.newest == {"BTCUSDT": closed_kline("BTCUSDT", 2).open_time}


def test_what_queued_up_is_stored_as_one_batch() -> None:
    batches: list[list[ClosedKline]] = []
    writer = KlineWriter(capacity=10, store=lambda batch: batches.append(batch) or batch, max_batch=4)
    klines = [closed_kline("BTCUSDT", offset) for offset in range(6)]
    for kline in klines:
        writer.offer(kline)  # queued before the writer starts
    writer.start()
    assert writer.close(deadline=time.monotonic() + 5) == 0
    assert batches == [klines[:4], klines[4:]]


def test_a_failed_write_is_retried_until_the_database_is_back() -> None:
    attempts: list[int] = []

    def flaky(batch: list[ClosedKline]) -> list[ClosedKline]:
        attempts.append(len(batch))
        if len(attempts) < 3:
            raise DatabaseError("server selection timed out")
        return batch

    recovered: list[bool] = []
    stored: list[ClosedKline] = []
    writer = KlineWriter(
        capacity=10, store=flaky, on_stored=stored.extend, on_recovered=lambda: recovered.append(True)
    ).start()
    writer.offer(closed_kline())
    assert writer.close(deadline=time.monotonic() + 5) == 0
    assert attempts == [1, 1, 1]
    assert stored == [closed_kline()]
    assert recovered == [True]
    assert writer.stats.outages == 1


def test_a_full_queue_drops_loudly_without_blocking(caplog: pytest.LogCaptureFixture) -> None:
    dropped: list[ClosedKline] = []
    writer = KlineWriter(capacity=2, on_dropped=dropped.append)  # not started: nothing drains the queue
    with caplog.at_level(logging.ERROR, logger="klines.ingest.writer"):
        results = [writer.offer(closed_kline("BTCUSDT", offset)) for offset in range(5)]
    assert results == [True, True, False, False, False]
    assert [k.open_time for k in dropped] == [closed_kline("BTCUSDT", o).open_time for o in (2, 3, 4)]
    assert writer.stats.dropped == 3
    assert len(caplog.records) == 1  # one loud line, not one per kline
    assert "QUEUE FULL" in caplog.records[0].getMessage()


def test_close_reports_what_could_not_be_written_in_time() -> None:
    writer = KlineWriter(capacity=5)
    for offset in range(3):
        writer.offer(closed_kline("BTCUSDT", offset))
    assert writer.close(deadline=time.monotonic() + 0.1) == 3
