"""Turn stream messages into closed klines for the writer, counting what was skipped and why."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from klines.binance.parse import ClosedKline, MalformedMessage, StreamUpdate, parse_stream_message

logger = logging.getLogger(__name__)

# Each bad frame is logged once, with the offending part; a flood of them is
# capped at this many lines a minute (all are still counted).
MALFORMED_LOG_PER_MINUTE = 20


@dataclass
class IngestStats:
    received: int = 0
    malformed: int = 0
    ignored: int = 0
    malformed_kinds: Counter[str] = field(default_factory=Counter)  # offending part -> frames
    latest_event_ms: int | None = None  # the newest event time (``E``) read: the exchange's clock

    def count_malformed(self, exc: MalformedMessage) -> None:
        """One frame skipped as malformed, counted with its offending part."""
        self.malformed += 1
        self.malformed_kinds[exc.kind] += 1


class CappedLog:
    """Log a warning per bad frame, at most :data:`MALFORMED_LOG_PER_MINUTE` lines a minute."""

    def __init__(self) -> None:
        self._window = (float("-inf"), 0)  # (minute start, lines logged in it)

    def __call__(self, message: str, *args: object) -> None:
        now = time.monotonic()
        started, lines = self._window
        if now - started >= 60:
            started, lines = now, 0
        if lines < MALFORMED_LOG_PER_MINUTE:
            logger.warning(message, *args)
        elif lines == MALFORMED_LOG_PER_MINUTE:
            logger.warning("more bad frames this minute are counted in the stats line but not logged")
        self._window = (started, lines + 1)


class KlineIngestor:
    """Parse each message; hand closed klines of the wanted ``(symbol, interval)`` streams to ``sink``."""

    def __init__(
        self,
        *,
        streams: Iterable[tuple[str, str]],
        sink: Callable[[ClosedKline], None],
        on_update: Callable[[StreamUpdate], None] | None = None,
    ) -> None:
        self.streams = {(symbol.upper(), interval) for symbol, interval in streams}
        self.sink = sink
        self.on_update = on_update  # in-progress updates of wanted streams (the relay), if any
        self.stats = IngestStats()
        self._warn = CappedLog()

    def handle_message(self, text: str) -> None:
        """Process one frame; malformed or unexpected frames are logged and skipped."""
        self.stats.received += 1
        try:
            update = parse_stream_message(text)
        except MalformedMessage as exc:
            self.stats.count_malformed(exc)
            self._warn("skipped malformed message: %s", exc)
            return
        kline = update.kline
        event_ms = update.data.get("E") if update.data is not None else None
        if isinstance(event_ms, int) and event_ms > (self.stats.latest_event_ms or 0):
            self.stats.latest_event_ms = event_ms
        if (kline.symbol, kline.interval) not in self.streams:
            self.stats.ignored += 1
            self._warn("skipped kline for unexpected stream %s@%s", kline.symbol, kline.interval)
            return
        if update.closed:
            self.sink(kline)
        elif self.on_update is not None:
            self.on_update(update)
