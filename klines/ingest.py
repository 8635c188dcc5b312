"""Turn stream messages into stored klines, counting what happened."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from klines.binance import ClosedKline, MalformedMessage, parse_stream_message
from klines.store import save_kline

logger = logging.getLogger(__name__)


@dataclass
class IngestStats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    malformed: int = 0
    ignored: int = 0
    malformed_kinds: set[str] = field(default_factory=set)


class KlineIngestor:
    """Parse each message; store closed klines of the wanted symbols and interval once."""

    def __init__(
        self,
        *,
        symbols: tuple[str, ...],
        interval: str,
        on_stored: Callable[[ClosedKline], None] = lambda kline: None,
        sink: Callable[[ClosedKline], None] | None = None,
    ) -> None:
        """``sink``, when given, takes each closed kline instead of it being stored here
        (e.g. :meth:`klines.writer.BatchWriter.put`, which reports what it stored itself)."""
        self.symbols = {s.upper() for s in symbols}
        self.interval = interval
        self.on_stored = on_stored
        self.sink = sink
        self.stats = IngestStats()

    def handle_message(self, text: str) -> None:
        """Process one frame; malformed or unexpected frames are logged and skipped."""
        self.stats.received += 1
        try:
            update = parse_stream_message(text)
        except MalformedMessage as exc:
            self.stats.malformed += 1
            logger.warning("skipped malformed message: %s", exc)
            return
        kline = update.kline
        if kline.symbol not in self.symbols or kline.interval != self.interval:
            self.stats.ignored += 1
            logger.warning("skipped kline for unexpected stream %s@%s", kline.symbol, kline.interval)
            return
        if update.closed:
            (self.sink or self.store)(kline)

    def store(self, kline: ClosedKline) -> bool:
        """Store one closed kline; ``False`` if it was stored before."""
        if save_kline(kline) is None:
            self.stats.duplicates += 1
            return False
        self.stats.stored += 1
        self.on_stored(kline)
        return True
