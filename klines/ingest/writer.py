"""One writer thread that stores closed klines from a bounded queue, in batches.

The stream readers hand klines over with :meth:`KlineWriter.offer`, which never
blocks, so the stream keeps being read while the database is slow or down. The
writer takes whatever has queued up (up to ``max_batch``), stores it with
``store`` and retries a failed write until the database is back. When the
queue is full the kline is dropped, loudly, and ``on_dropped`` asks the REST
backfill to fetch it again.

The writer never dies on a document. Only transient errors (the database
unreachable, timing out, stepping down) are retried without limit. A batch
that fails because of a document (the server refuses it, or it cannot be
encoded) is split until the bad one is alone; the others are stored, the bad
one is logged and counted as rejected. Any other error is retried a few times
and then raised, so the supervisor stops the process rather than leave it
storing nothing.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from bson.errors import BSONError
from django.core.exceptions import ValidationError
from pymongo.errors import BulkWriteError, ConnectionFailure, ExecutionTimeout, PyMongoError, WTimeoutError

from klines.backoff import Backoff
from klines.binance.parse import ClosedKline
from klines.ingest.supervise import FatalCondition, Spawn, unsupervised
from klines.store.writes import save_klines

logger = logging.getLogger(__name__)

GET_TICK_SECONDS = 0.25
OUTAGE_LOG_SECONDS = 30.0  # while the database is down, one reminder this often
DROP_LOG_SECONDS = 10.0  # while the queue is full, one error line this often
WRITE_RETRY = Backoff(initial=0.2, maximum=2.0)
MAX_BATCH = 500
UNEXPECTED_RETRIES = 5  # an error neither transient nor a document's: retried this often, then raised
# Server error codes of a node that is shutting down, stepping down or unreachable (MongoDB's retryable set).
TRANSIENT_CODES = frozenset({6, 7, 89, 91, 134, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436})


@dataclass
class WriterStats:
    stored: int = 0
    duplicates: int = 0
    dropped: int = 0
    outages: int = 0
    rejected: int = 0  # klines the database refused or that could not be encoded: logged, not stored


class KlineWriter:
    def __init__(
        self,
        *,
        capacity: int,
        on_stored: Callable[[list[ClosedKline]], None] = lambda klines: None,
        on_dropped: Callable[[ClosedKline], None] = lambda kline: None,
        on_recovered: Callable[[], None] = lambda: None,
        on_rejected: Callable[[ClosedKline], None] = lambda kline: None,
        store: Callable[[Sequence[ClosedKline]], list[ClosedKline]] = save_klines,
        max_batch: int = MAX_BATCH,
        retry: Backoff = WRITE_RETRY,
    ) -> None:
        """``store`` takes a batch and returns the klines it newly stored (the others were stored before);
        ``on_stored`` gets each such list."""
        self.capacity = capacity
        self.store = store
        self.max_batch = max_batch
        self.on_stored = on_stored
        self.on_dropped = on_dropped
        self.on_recovered = on_recovered
        self.on_rejected = on_rejected
        self.retry = retry
        self.stats = WriterStats()
        self.newest: dict[tuple[str, str], datetime] = {}  # (symbol, interval) -> open time of the newest stored
        self._queue: queue.Queue[ClosedKline] = queue.Queue(maxsize=capacity)
        self._in_flight = 0
        self._closing = threading.Event()
        self._abandon = threading.Event()
        self._last_drop_log = float("-inf")
        self._thread: threading.Thread | None = None
        # Printing and publishing a stored batch (one Redis message per kline) take
        # as long as the insert; a reporter thread does it, in order, so the next
        # insert does not wait for it.
        self._reports: queue.Queue[list[ClosedKline] | None] = queue.Queue()
        self._reporter: threading.Thread | None = None

    # -- producers -------------------------------------------------------------
    def offer(self, kline: ClosedKline) -> bool:
        """Queue ``kline`` without blocking; drop it (and say so) when the queue is full."""
        try:
            self._queue.put_nowait(kline)
        except queue.Full:
            self._dropped(kline)
            return False
        return True

    def put(self, kline: ClosedKline, *, stop: threading.Event) -> bool:
        """Queue ``kline``, waiting while the queue is full; ``False`` if stopped first."""
        while not (stop.is_set() or self._closing.is_set()):
            try:
                self._queue.put(kline, timeout=GET_TICK_SECONDS)
            except queue.Full:
                continue
            return True
        return False

    def note_newest(self, symbol: str, interval: str, open_time: datetime) -> None:
        """Record a kline known to be stored (e.g. found in the database by the backfill)."""
        key = (symbol, interval)
        if key not in self.newest or open_time > self.newest[key]:
            self.newest[key] = open_time

    @property
    def pending(self) -> int:
        """Klines queued or being written."""
        return self._queue.qsize() + self._in_flight

    # -- lifecycle -------------------------------------------------------------
    def start(self, spawn: Spawn = unsupervised) -> KlineWriter:
        """Start the writer and reporter threads with ``spawn`` (the service's supervisor)."""
        self._thread = spawn("kline-writer", self._run)
        self._reporter = spawn("kline-reporter", self._report)
        return self

    def close(self, *, deadline: float) -> int:
        """Write what is queued until ``deadline`` (monotonic); return how many were left unwritten."""
        self._closing.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(max(0.0, deadline - time.monotonic()))
        self._abandon.set()
        self._reports.put(None)
        if self._reporter is not None and self._reporter.is_alive():
            self._reporter.join(max(0.0, deadline - time.monotonic()))
        return self.pending

    # -- the writer thread -----------------------------------------------------
    def _run(self) -> None:
        while not self._abandon.is_set():
            batch = self._next_batch()
            if batch is None:
                return
            if batch and self._write(batch):
                self._in_flight = 0

    def _next_batch(self) -> list[ClosedKline] | None:
        """What has queued up, at most ``max_batch``; ``[]`` after a quiet tick, ``None`` when closed and empty."""
        try:
            batch = [self._queue.get(timeout=GET_TICK_SECONDS)]
        except queue.Empty:
            return None if self._closing.is_set() else []
        while len(batch) < self.max_batch:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        self._in_flight = len(batch)
        return batch

    def _write(self, batch: list[ClosedKline]) -> bool:
        """Store one batch, retrying while the database is unavailable; ``False`` if abandoned."""
        failed_at = None
        attempt = unexpected = 0
        last_log = 0.0
        while True:
            try:
                stored = self.store(batch)
            except FatalCondition:
                raise
            except Exception as exc:
                if is_document_error(exc):
                    return self._isolate(batch, exc)
                if not is_transient(exc):
                    unexpected += 1
                    if unexpected > UNEXPECTED_RETRIES:
                        raise
                    logger.error("writing %d klines failed (%s); retrying", len(batch), _describe(exc))
                now = time.monotonic()
                if failed_at is None:
                    failed_at = last_log = now
                    self.stats.outages += 1
                    logger.error(
                        "database unavailable (%s): %d klines wait in the queue (bound %d) until it is back",
                        _describe(exc),
                        self.pending,
                        self.capacity,
                    )
                elif now - last_log >= OUTAGE_LOG_SECONDS:
                    last_log = now
                    logger.error(
                        "database still unavailable after %.0fs; %d klines queued", now - failed_at, self.pending
                    )
                if self._abandon.wait(self.retry.delay(attempt)):
                    return False
                attempt += 1
                continue
            if failed_at is not None:
                logger.warning(
                    "database back after %.1fs; writing %d queued klines", time.monotonic() - failed_at, self.pending
                )
                self.on_recovered()
            break
        self._stored(batch, stored)
        return True

    def _isolate(self, batch: list[ClosedKline], exc: Exception) -> bool:
        """A document of ``batch`` was refused: store the others, halving until the bad ones are alone."""
        if len(batch) == 1:
            self.stats.rejected += 1
            kline = batch[0]
            logger.error(
                "REJECTED %s %s %s (%s); not stored, %d so far: %r",
                kline.symbol,
                kline.interval,
                kline.open_time,
                _describe(exc),
                self.stats.rejected,
                kline,
            )
            self.on_rejected(kline)
            return True
        middle = len(batch) // 2
        return self._write(batch[:middle]) and self._write(batch[middle:])

    def _stored(self, batch: list[ClosedKline], stored: list[ClosedKline]) -> None:
        self.stats.duplicates += len(batch) - len(stored)
        self.stats.stored += len(stored)
        for kline in stored:
            self.note_newest(kline.symbol, kline.interval, kline.open_time)
        if stored:
            self._reports.put(stored)

    def _report(self) -> None:
        while (stored := self._reports.get()) is not None:
            try:
                self.on_stored(stored)
            except Exception:  # printing or publishing must not stop the writer
                logger.exception("after storing %d klines", len(stored))

    def _dropped(self, kline: ClosedKline) -> None:
        self.stats.dropped += 1
        now = time.monotonic()
        if now - self._last_drop_log >= DROP_LOG_SECONDS:
            self._last_drop_log = now
            logger.error(
                "QUEUE FULL (%d klines waiting for the database): dropped %s %s and %d so far; "
                "the REST backfill will fetch them again",
                self.capacity,
                kline.symbol,
                kline.open_time,
                self.stats.dropped,
            )
        self.on_dropped(kline)


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps (Django wraps pymongo's errors in ``DatabaseError``)."""
    chain = [exc]
    while (cause := chain[-1].__cause__ or chain[-1].__context__) is not None and cause not in chain:
        chain.append(cause)
    return chain


def is_transient(exc: BaseException) -> bool:
    """The database is unreachable, timing out or changing primaries: the same write may succeed later."""
    for cause in _causes(exc):
        if isinstance(cause, ConnectionFailure | ExecutionTimeout | WTimeoutError):
            return True
        if isinstance(cause, PyMongoError) and (
            cause.has_error_label("RetryableWriteError") or getattr(cause, "code", None) in TRANSIENT_CODES
        ):
            return True
    return False


def is_document_error(exc: BaseException) -> bool:
    """A document of the batch was refused by the server or could not be encoded; the others can be stored."""
    for cause in _causes(exc):
        if isinstance(cause, BulkWriteError):
            return bool(cause.details.get("writeErrors"))
        if isinstance(cause, BSONError | ValidationError | ArithmeticError):
            return True
    return False


def _describe(exc: BaseException) -> str:
    """Django wraps pymongo's error, sometimes without a message: name the cause."""
    cause = exc.__cause__ or exc
    return f"{type(cause).__name__}: {str(cause)[:300]}"
