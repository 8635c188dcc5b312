"""The ingest's batch writer, with a fake store (no database)."""

from __future__ import annotations

import threading

from django.db import DatabaseError

from klines.binance import ClosedKline
from klines.writer import BatchWriter
from tests.factories import closed_kline


class GatedStore:
    """Records each batch; the first write waits until released, so later klines queue up."""

    def __init__(self, *, duplicates: set[int] = frozenset(), failures: int = 0) -> None:
        self.batches: list[list[ClosedKline]] = []
        self.release = threading.Event()
        self.duplicates = duplicates
        self.failures = failures

    def __call__(self, batch: list[ClosedKline]) -> list[ClosedKline]:
        self.release.wait(5)
        if self.failures:
            self.failures -= 1
            raise DatabaseError("connection refused")
        self.batches.append(batch)
        return [k for k in batch if k.open_time.minute not in self.duplicates]


def test_klines_queued_during_a_write_go_out_together_in_order() -> None:
    store = GatedStore()
    stored: list[list[ClosedKline]] = []
    writer = BatchWriter(on_stored=stored.append, store=store).start()
    klines = [closed_kline("BTCUSDT", offset) for offset in range(5)]
    for kline in klines:
        writer.put(kline)
    store.release.set()
    writer.close()
    assert [k for batch in store.batches for k in batch] == klines
    assert len(store.batches) <= 2  # the first kline alone at most, then the rest as one batch
    assert [k for batch in stored for k in batch] == klines


def test_batches_are_capped_at_max_batch() -> None:
    store = GatedStore()
    writer = BatchWriter(on_stored=lambda batch: None, store=store, max_batch=2).start()
    for offset in range(5):
        writer.put(closed_kline("BTCUSDT", offset))
    store.release.set()
    writer.close()
    assert all(len(batch) <= 2 for batch in store.batches)
    assert sum(len(batch) for batch in store.batches) == 5


def test_duplicates_are_counted_and_not_reported_as_stored() -> None:
    store = GatedStore(duplicates={1})
    store.release.set()
    stored: list[ClosedKline] = []
    duplicates: list[int] = []
    writer = BatchWriter(on_stored=stored.extend, on_duplicates=duplicates.append, store=store).start()
    for offset in range(3):
        writer.put(closed_kline("BTCUSDT", offset))
    writer.close()
    assert [k.open_time.minute for k in stored] == [0, 2]
    assert sum(duplicates) == 1


def test_a_failed_write_is_retried_without_losing_the_batch(monkeypatch) -> None:
    monkeypatch.setattr("klines.writer.RETRY_SECONDS", (0.01,))
    store = GatedStore(failures=2)
    store.release.set()
    stored: list[ClosedKline] = []
    writer = BatchWriter(on_stored=stored.extend, store=store).start()
    writer.put(closed_kline("BTCUSDT"))
    writer.close()
    assert stored == [closed_kline("BTCUSDT")]
