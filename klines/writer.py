"""A writer thread that stores closed klines in batches, so the stream reader never waits on the database.

The reader hands each closed kline to :meth:`BatchWriter.put`. The writer takes
whatever has queued up since its last write (up to ``max_batch``) and stores
it with one ``insert_many``: one close is written at once, and 1,000 closes
arriving in the same second go out in a few round trips instead of 1,000.
What was stored is reported (printed, published) on a second thread, in order,
so reporting one batch never holds up storing the next.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from django.db import DatabaseError

from klines.binance import ClosedKline
from klines.store import save_klines

logger = logging.getLogger(__name__)

RETRY_SECONDS = (0.5, 1, 2, 5)
_STOP = object()


class BatchWriter:
    """Store queued klines in batches on a thread; ``on_stored`` gets each batch newly stored."""

    def __init__(
        self,
        *,
        on_stored: Callable[[list[ClosedKline]], None],
        on_duplicates: Callable[[int], None] = lambda count: None,
        store: Callable[[list[ClosedKline]], list[ClosedKline]] = save_klines,
        max_batch: int = 500,
        max_queue: int = 20_000,
    ) -> None:
        self.on_stored = on_stored
        self.on_duplicates = on_duplicates
        self.store = store
        self.max_batch = max_batch
        self._queue: queue.Queue = queue.Queue(max_queue)
        self._stopping = threading.Event()
        self._stored: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="kline-writer", daemon=True)
        self._reporter = threading.Thread(target=self._report, name="kline-writer-report", daemon=True)

    def start(self) -> BatchWriter:
        self._thread.start()
        self._reporter.start()
        return self

    def put(self, kline: ClosedKline) -> None:
        """Queue one closed kline; blocks (holding the reader back) only if the writer is far behind."""
        self._queue.put(kline)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop; gives up retrying a failing database after ``timeout``."""
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._stopping.set()
        self._thread.join(timeout)
        self._stored.put(_STOP)
        self._reporter.join(timeout)

    def _run(self) -> None:
        while True:
            batch, stop = self._next_batch()
            if batch:
                self._write(batch)
            if stop:
                return

    def _next_batch(self) -> tuple[list[ClosedKline], bool]:
        item = self._queue.get()
        batch: list[ClosedKline] = []
        while item is not _STOP:
            batch.append(item)
            if len(batch) >= self.max_batch:
                return batch, False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch, False
        return batch, True

    def _write(self, batch: list[ClosedKline]) -> None:
        failures = 0
        while True:
            try:
                stored = self.store(batch)
                break
            except DatabaseError as exc:
                if self._stopping.is_set():
                    logger.error("giving up on %d klines: database unavailable (%s)", len(batch), exc)
                    return
                delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
                failures += 1
                logger.warning("storing %d klines failed (%s); retry in %ss", len(batch), exc, delay)
                self._stopping.wait(delay)
        if len(stored) < len(batch):
            self.on_duplicates(len(batch) - len(stored))
        if stored:
            self._stored.put(stored)

    def _report(self) -> None:
        while (stored := self._stored.get()) is not _STOP:
            try:
                self.on_stored(stored)
            except Exception:  # reporting must not stop the writer
                logger.exception("handling %d stored klines failed", len(stored))
