"""Relay in-progress kline updates to the serving processes, in batches, never blocking a reader.

A reader thread :meth:`UpdateRelay.offer`s each in-progress event (stream name,
open time and the event's JSON, encoded once). The relay's own thread sends
what gathered every :data:`TICK_SECONDS` as one channel-layer message per
:data:`BATCH_EVENTS` (not one per update), through ``publish``. Nothing here is
stored, so nothing is retried: a batch the layer refused is dropped and counted
(it is stale by the next tick), and while a send hangs the buffer keeps the
newest ``capacity`` events, dropping and counting the oldest. Each batch goes
with the time (epoch ms) the oldest update waiting was offered: the serving
processes time their fan-out from it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

logger = logging.getLogger(__name__)

Event = tuple[str, int, str]  # stream name, open time (ms), the event's JSON
TICK_SECONDS = 0.1
BATCH_EVENTS = 500  # per layer message: ~200 KB, well within Redis' and channels_redis' comfort
CAPACITY = 10_000
WARN_EVERY_SECONDS = 10.0


class UpdateRelay:
    def __init__(
        self,
        publish: Callable[[list[Event], int], bool],
        *,
        tick: float = TICK_SECONDS,
        capacity: int = CAPACITY,
        stop: threading.Event,
    ) -> None:
        self._publish = publish
        self._tick = tick
        self._buffer: deque[Event] = deque()
        self._oldest_ms = 0  # when the oldest update in the buffer was offered
        self._capacity = capacity
        self._lock = threading.Lock()
        self._stop = stop
        self.relayed = 0
        self.dropped = 0
        self._warned = float("-inf")

    def offer(self, stream: str, open_ms: int, text: str) -> None:
        """Queue one update (reader threads); drops the oldest beyond ``capacity``, never waits."""
        with self._lock:
            if not self._buffer:
                self._oldest_ms = int(time.time() * 1000)
            if len(self._buffer) >= self._capacity:
                self._buffer.popleft()
                self.dropped += 1
            self._buffer.append((stream, open_ms, text))

    def run(self) -> None:
        """Flush every tick until ``stop`` is set (the relay's thread)."""
        while not self._stop.wait(self._tick):
            self.flush()

    def flush(self) -> None:
        with self._lock:
            events = list(self._buffer)
            self._buffer.clear()
            received_ms = self._oldest_ms
        for start in range(0, len(events), BATCH_EVENTS):
            batch = events[start : start + BATCH_EVENTS]
            if self._publish(batch, received_ms):
                self.relayed += len(batch)
            else:
                self._lost(events[start:])
                return

    def _lost(self, events: list[Event]) -> None:
        """The layer failed: these events are stale by the next tick anyway, so they are dropped."""
        self.dropped += len(events)
        now = time.monotonic()
        if now - self._warned >= WARN_EVERY_SECONDS:
            self._warned = now
            logger.warning("in-progress updates not relayed (channel layer down); %d dropped so far", self.dropped)
