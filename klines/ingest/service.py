"""The ingest service: stream readers, one writer, the REST backfill and the stats line, wired together.

* One reader thread per connection (:func:`run_stream`); streams are split across
  connections at ``streams_per_connection``. A reader parses each frame and hands
  closed klines to the writer's bounded queue — never blocking on the database.
* A :class:`SequenceWatch` compares each closed kline with the newest one known for
  its symbol; a skipped interval asks the backfill to fetch it.
* The :class:`KlineWriter` thread stores what is queued, riding out database outages;
  a kline dropped from a full queue is handed to the backfill too.
* The :class:`Backfiller` thread fetches from REST at start, after every (re)connect,
  on a gap or a drop.
* On stop, readers stop first, then the writer writes what is queued, all within
  :data:`SHUTDOWN_SECONDS`.
* Every thread runs under a :class:`Supervisor`: if one dies unexpectedly, the
  service shuts down the same way and :meth:`IngestService.run` raises
  :class:`IngestFailed`, so the command exits non-zero.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from klines.backoff import Backoff
from klines.binance.parse import ClosedKline, StreamUpdate, combined_stream_url, datetime_to_ms, stream_name
from klines.binance.rest import BinanceRest
from klines.ingest.backfill import Backfiller
from klines.ingest.frames import KlineIngestor
from klines.ingest.gaps import SequenceWatch
from klines.ingest.relay import UpdateRelay
from klines.ingest.settings import IngestSettings
from klines.ingest.stats import Counters, format_stats, lag_seconds
from klines.ingest.stream import StreamStats, run_stream, split_streams
from klines.ingest.supervise import Supervisor
from klines.ingest.writer import KlineWriter

logger = logging.getLogger(__name__)

SHUTDOWN_SECONDS = 4.0  # stop to return: readers, then the queued writes (the process must exit within 5 s)
READERS_STOP_SECONDS = 1.5
TICK_SECONDS = 0.5


class IngestFailed(Exception):
    """A thread of the ingest died unexpectedly; the service stopped (the message says which and why)."""


@dataclass
class Connection:
    """One websocket connection's share of the symbols and its own parsing state."""

    name: str
    symbols: tuple[str, ...]
    url: str
    ingestor: KlineIngestor
    stream_stats: StreamStats = field(default_factory=StreamStats)
    connects: int = 0
    thread: threading.Thread | None = field(default=None, repr=False)


class IngestService:
    def __init__(
        self,
        settings: IngestSettings,
        *,
        on_stored: Callable[[list[ClosedKline]], None],
        relay: Callable[[list], bool] | None = None,
    ) -> None:
        """``on_stored`` gets each batch of newly stored klines (on the writer thread); ``relay``, if given,
        each batch of in-progress updates (:mod:`klines.ingest.relay`)."""
        self.settings = settings
        self.stop = threading.Event()
        self.relay = UpdateRelay(relay, stop=self.stop) if relay is not None else None
        self.supervisor = Supervisor()
        self.writer = KlineWriter(
            capacity=settings.queue_size,
            on_stored=on_stored,
            on_dropped=self._dropped,
            on_recovered=lambda: self.backfill.retry_now(),
        )
        self.rest = BinanceRest(settings.rest_url, weight_per_minute=settings.rest_weight_per_minute, stop=self.stop)
        self.backfill = Backfiller(
            rest=self.rest,
            interval=settings.interval,
            interval_ms=settings.interval_ms,
            deliver=self._fetched,
            stop=self.stop,
            on_newest=self._newest_stored,
        )
        # One watch for all connections: a gap is judged against every kline known, from any source.
        self.watch = SequenceWatch(settings.interval_ms)
        groups = split_streams(settings.symbols, settings.streams_per_connection)
        self.connections = [self._connection(f"connection {i}/{len(groups)}", g) for i, g in enumerate(groups, 1)]

    def _connection(self, name: str, symbols: tuple[str, ...]) -> Connection:
        return Connection(
            name=name,
            symbols=symbols,
            url=combined_stream_url(self.settings.ws_url, symbols, self.settings.interval),
            ingestor=KlineIngestor(
                symbols=symbols,
                interval=self.settings.interval,
                sink=lambda kline: self._closed(name, kline),
                on_update=self._in_progress if self.relay is not None else None,
            ),
        )

    # -- callbacks (reader and writer threads) ---------------------------------
    def _connected(self, connection: Connection) -> None:
        connection.connects += 1
        self.backfill.request(connection.symbols)

    def _closed(self, connection: str, kline: ClosedKline) -> None:
        missing = self.watch.observe(kline.symbol, datetime_to_ms(kline.open_time))
        if missing is not None:
            logger.warning(
                "%s: the stream skipped %s klines before %s; backfilling them",
                connection,
                kline.symbol,
                kline.open_time,
            )
            self.backfill.request([kline.symbol], from_ms=missing)
        self.writer.offer(kline)

    def _in_progress(self, update: StreamUpdate) -> None:
        kline = update.kline
        text = json.dumps(update.data, separators=(",", ":"))  # encoded once, for every serving process
        self.relay.offer(stream_name(kline.symbol, kline.interval), datetime_to_ms(kline.open_time), text)

    def _fetched(self, kline: ClosedKline) -> bool:
        self.watch.note(kline.symbol, datetime_to_ms(kline.open_time))
        return self.writer.put(kline, stop=self.stop)

    def _newest_stored(self, symbol: str, open_time: datetime) -> None:
        self.watch.note(symbol, datetime_to_ms(open_time))
        self.writer.note_newest(symbol, open_time)

    def _dropped(self, kline: ClosedKline) -> None:
        self.backfill.request([kline.symbol], from_ms=datetime_to_ms(kline.open_time))

    # -- running ---------------------------------------------------------------
    def run(self, stop: threading.Event) -> int:
        """Ingest until ``stop`` is set; return the number of queued klines left unwritten.

        Raises :class:`IngestFailed`, after the same shutdown, when a thread died unexpectedly.
        """
        spawn = self.supervisor.spawn
        self.writer.start(spawn)
        self.backfill.start(spawn)
        self.backfill.request(self.settings.symbols)
        if self.relay is not None:
            spawn("update relay", self.relay.run)
        backoff = Backoff(maximum=self.settings.reconnect_max_seconds)
        for connection in self.connections:
            connection.thread = spawn(
                connection.name,
                functools.partial(
                    run_stream,
                    connection.url,
                    on_message=connection.ingestor.handle_message,
                    stop=self.stop,
                    on_connect=functools.partial(self._connected, connection),
                    silence_seconds=self.settings.silence_seconds,
                    backoff=backoff,
                    name=connection.name,
                    stats=connection.stream_stats,
                ),
            )
        next_stats = time.monotonic() + self.settings.stats_seconds
        while not (stop.wait(TICK_SECONDS) or self.supervisor.failed.is_set()):
            if time.monotonic() >= next_stats:
                next_stats += self.settings.stats_seconds
                logger.info(self.stats_line())
        left = self._shut_down()
        if self.supervisor.failure is not None:
            raise IngestFailed(f"{self.supervisor.failure}; {left} queued klines left unwritten")
        return left

    def _shut_down(self) -> int:
        stopped = time.monotonic()
        self.stop.set()
        logger.info("stopping: %d klines queued, writing them before exit", self.writer.pending)
        for connection in self.connections:
            if connection.thread is not None:
                connection.thread.join(max(0.0, stopped + READERS_STOP_SECONDS - time.monotonic()))
        self.backfill.join(0.1)
        left = self.writer.close(deadline=stopped + SHUTDOWN_SECONDS)
        logger.info(self.stats_line())
        if left:
            logger.error("%d klines still queued at exit (database unavailable?); the next start backfills them", left)
        if self.backfill.pending:
            logger.warning(
                "%d symbols still wait for a backfill (REST or the database unavailable?); "
                "the next start backfills them and refills any hole",
                self.backfill.pending,
            )
        return left

    # -- visibility --------------------------------------------------------------
    def counters(self) -> Counters:
        ingest = [c.ingestor.stats for c in self.connections]
        return Counters(
            messages=sum(s.received for s in ingest),
            stored=self.writer.stats.stored,
            duplicates=self.writer.stats.duplicates,
            malformed=sum(s.malformed for s in ingest),
            malformed_kinds=dict(sum((s.malformed_kinds for s in ingest), Counter())),
            unknown=sum(s.ignored for s in ingest),
            reconnects=sum(max(0, c.connects - 1) for c in self.connections),
            dropped=self.writer.stats.dropped,
            queued=self.writer.pending,
            backfilled=self.backfill.stats.fetched,
            rejected=self.writer.stats.rejected,
            pongs_skipped=sum(c.stream_stats.pongs_skipped for c in self.connections),
            rate_limited=self.rest.rate_limited,
        )

    def lags(self) -> dict[str, float | None]:
        newest: dict[str, datetime] = dict(self.writer.newest)
        return lag_seconds(
            newest, self.settings.symbols, interval_ms=self.settings.interval_ms, now_ms=self.rest.exchange_now_ms()
        )

    def stats_line(self) -> str:
        return format_stats(self.counters(), self.lags())
