"""The writer: store from a bounded queue, drop loudly when full, never die on a document, report what is left."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from decimal import Decimal

import pytest
from django.db import DatabaseError
from pymongo.errors import BulkWriteError, OperationFailure, ServerSelectionTimeoutError

from klines.backoff import Backoff
from klines.binance.parse import ClosedKline
from klines.ingest.supervise import Supervisor
from klines.ingest.writer import KlineWriter
from klines.models import Kline
from tests.helpers import closed_kline, wait_until

QUICK = Backoff(initial=0.01, maximum=0.01)


def wrapped(error: Exception) -> DatabaseError:
    """A pymongo error as django-mongodb-backend raises it."""
    try:
        raise DatabaseError from error
    except DatabaseError as exc:
        return exc


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
    assert writer.newest == {("BTCUSDT", "1m"): closed_kline("BTCUSDT", 2).open_time}


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
            raise wrapped(ServerSelectionTimeoutError("127.0.0.1:27117: connection refused"))
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


@pytest.mark.django_db(transaction=True)
def test_a_kline_the_database_cannot_hold_is_rejected_and_the_rest_of_its_batch_stored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Decimal128 raises decimal.Overflow for this close; it used to kill the writer thread.
    bad = replace(closed_kline("BTCUSDT", 1), close=Decimal("1E+9999"))
    batch = [closed_kline("BTCUSDT", 0), bad, closed_kline("BTCUSDT", 2), closed_kline("ETHUSDT", 0)]
    writer = KlineWriter(capacity=10)
    for kline in batch:
        writer.offer(kline)
    with caplog.at_level(logging.ERROR, logger="klines.ingest.writer"):
        writer.start()
        assert writer.close(deadline=time.monotonic() + 10) == 0
    assert Kline.objects.count() == 3
    assert (writer.stats.stored, writer.stats.rejected) == (3, 1)
    assert "REJECTED BTCUSDT 1m 2025-11-25 10:01:00+00:00 (Overflow" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_the_writer_goes_on_storing_after_a_rejected_kline() -> None:
    writer = KlineWriter(capacity=10).start()
    writer.offer(replace(closed_kline("BTCUSDT", 0), volume=Decimal("1" * 40)))
    wait_until(lambda: writer.stats.rejected == 1, timeout=10, what="the bad kline to be rejected on its own")
    writer.offer(closed_kline("BTCUSDT", 1))
    assert writer.close(deadline=time.monotonic() + 10) == 0
    assert list(Kline.objects.values_list("open_time", flat=True)) == [closed_kline("BTCUSDT", 1).open_time]


def test_a_document_the_server_refuses_is_not_retried_forever() -> None:
    refused = closed_kline("BTCUSDT", 3)
    stored: list[ClosedKline] = []

    def validating(batch: list[ClosedKline]) -> list[ClosedKline]:
        if refused in batch:
            index = batch.index(refused)
            raise BulkWriteError(
                {"writeErrors": [{"index": index, "code": 121, "errmsg": "Document failed validation"}], "nInserted": 0}
            )
        return list(batch)

    writer = KlineWriter(capacity=10, store=validating, on_stored=stored.extend, retry=QUICK)
    klines = [closed_kline("BTCUSDT", offset) for offset in range(6)]
    for kline in klines:
        writer.offer(kline)
    writer.start()
    assert writer.close(deadline=time.monotonic() + 5) == 0
    assert stored == [k for k in klines if k != refused]
    assert writer.stats.rejected == 1
    assert writer.stats.outages == 0


def test_an_error_neither_transient_nor_a_documents_stops_the_writer_through_its_supervisor(
    caplog: pytest.LogCaptureFixture,
) -> None:
    attempts: list[int] = []

    def unauthorized(batch: list[ClosedKline]) -> list[ClosedKline]:
        attempts.append(len(batch))
        raise wrapped(OperationFailure("command insert requires authentication", code=13))

    supervisor = Supervisor()
    writer = KlineWriter(capacity=10, store=unauthorized, retry=QUICK)
    writer.offer(closed_kline())
    with caplog.at_level(logging.ERROR):
        writer.start(supervisor.spawn)
        assert supervisor.failed.wait(5)
    assert len(attempts) > 1  # retried a few times, not forever
    assert "thread 'kline-writer' died: DatabaseError" in supervisor.failure
    assert "Traceback" in caplog.text or any(r.exc_info for r in caplog.records)
    assert writer.close(deadline=time.monotonic() + 1) == 1


@pytest.mark.parametrize(
    "error",
    [
        ServerSelectionTimeoutError("no servers"),
        OperationFailure("interrupted at shutdown", code=11600),
        OperationFailure("not primary", code=10107),
    ],
)
def test_transient_errors_are_retried_until_the_write_succeeds(error: Exception) -> None:
    attempts: list[int] = []

    def flaky(batch: list[ClosedKline]) -> list[ClosedKline]:
        attempts.append(len(batch))
        if len(attempts) < 8:  # more than the retries of an unexpected error
            raise wrapped(error)
        return batch

    supervisor = Supervisor()
    writer = KlineWriter(capacity=10, store=flaky, retry=QUICK)
    writer.offer(closed_kline())
    writer.start(supervisor.spawn)
    assert writer.close(deadline=time.monotonic() + 5) == 0
    assert len(attempts) == 8
    assert not supervisor.failed.is_set()
