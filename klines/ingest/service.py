"""The ingest service: stream readers, one writer, the REST backfill and the stats line, wired together.

* One reader thread per connection (:func:`run_stream`); the (symbol, interval)
  streams are split across connections at ``streams_per_connection``. A reader parses each frame and hands
  closed klines to the writer's bounded queue — never blocking on the database.
* A :class:`SequenceWatch` per interval compares each closed kline with the newest one
  known for its symbol; a skipped interval asks the backfill to fetch it.
* The :class:`KlineWriter` thread stores what is queued, riding out database outages;
  a kline dropped from a full queue is handed to the backfill too.
* A :class:`Backfiller` thread per interval fetches from REST at start, after every
  (re)connect, on a gap or a drop; they share one paced REST client.
* A :class:`HistoryLoader` thread stores the newest ``KLINE_HISTORY`` closed klines of each stream once its
  connection is up (:mod:`klines.ingest.history_load`), straight into the store, within half the REST weight.
* A :class:`HoleRepair` thread per interval scans the whole stored record every
  ``repair_seconds`` and fetches every hole, whatever its age, through the same client.
* A :class:`DerivativesRecorder` thread records mark-price klines and funding rates from REST after
  each close, through the same client, once no kline backfill, history or write waits
  (:mod:`klines.ingest.derivatives`).
* Connections of their own read the mark-price streams (``<symbol>@markPrice@1s``, under ``/market`` as the
  klines); a funding is stored when its time passes (:mod:`klines.ingest.funding_stream`), then confirmed
  or corrected by the recorder's REST round. A :class:`DerivativesRepair` thread fetches the holes inside
  the mark-price and funding records (:mod:`klines.ingest.derivatives_repair`). ``mark_prices`` off: none of these.
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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from klines.backoff import Backoff
from klines.binance.derivatives import mark_intervals
from klines.binance.intervals import interval_ms
from klines.binance.markprice import MARK_STREAM, mark_stream_name, mark_stream_url
from klines.binance.parse import ClosedKline, StreamUpdate, combined_stream_url, datetime_to_ms, stream_name
from klines.binance.rest import BinanceRest
from klines.ingest.backfill import Backfiller
from klines.ingest.derivatives import DerivativesRecorder
from klines.ingest.derivatives_repair import DerivativesRepair
from klines.ingest.frames import KlineIngestor
from klines.ingest.funding_stream import FundingWatch, MarkPriceIngestor, StreamedFunding
from klines.ingest.gaps import SequenceWatch
from klines.ingest.history_load import HistoryLoader, HistoryStats
from klines.ingest.listing import ExchangeListing
from klines.ingest.plan import replan
from klines.ingest.relay import UpdateRelay
from klines.ingest.repair import HoleRepair
from klines.ingest.settings import IngestSettings
from klines.ingest.stats import Counters, format_stats, lag_seconds
from klines.ingest.stream import (
    CONNECT_ATTEMPTS_BURST,
    CONNECT_ATTEMPTS_PER_SECOND,
    StreamStats,
    TokenBucket,
    run_stream,
    split_streams,
)
from klines.ingest.supervise import Spawn, Supervisor
from klines.ingest.writer import KlineWriter
from klines.store.writes import save_klines

logger = logging.getLogger(__name__)

SHUTDOWN_SECONDS = 4.0  # stop to return: readers, then the queued writes (the process must exit within 5 s)
READERS_STOP_SECONDS = 1.5
TICK_SECONDS = 0.5


class IngestFailed(Exception):
    """A thread of the ingest died unexpectedly; the service stopped (the message says which and why)."""


@dataclass
class Connection:
    """One websocket connection's share of the (symbol, interval) streams and its own parsing state."""

    name: str
    streams: tuple[tuple[str, str], ...]
    url: str
    ingestor: KlineIngestor | MarkPriceIngestor
    stream_stats: StreamStats = field(default_factory=StreamStats)
    connects: int = 0
    thread: threading.Thread | None = field(default=None, repr=False)
    stop: threading.Event = field(default_factory=threading.Event, repr=False)  # retired (symbols changed)


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
            on_recovered=self._retry_backfills,
            on_rejected=self._rejected,
            store=self._store,
        )
        self.rest = BinanceRest(settings.rest_url, weight_per_minute=settings.rest_weight_per_minute, stop=self.stop)
        self.backfills = {
            interval: Backfiller(
                rest=self.rest,
                interval=interval,
                interval_ms=interval_ms(interval),
                deliver=self._fetched,
                stop=self.stop,
                on_newest=functools.partial(self._newest_stored, interval),
            )
            for interval in settings.intervals
        }
        self.repairs = {
            interval: HoleRepair(
                rest=self.rest,
                interval=interval,
                interval_ms=interval_ms(interval),
                symbols=lambda: self.symbols,
                deliver=self._fetched,
                stop=self.stop,
                every_seconds=settings.repair_seconds,
                # Not while the backfill fetches, or the writer stores, what would look like holes meanwhile.
                idle=lambda interval=interval: self.backfills[interval].idle and not self.writer.pending,
            )
            for interval in settings.intervals
        }
        # The first start's history (KLINE_HISTORY), once each stream's connection is up; 0: off.
        self.history = (
            HistoryLoader(
                rest=self.rest,
                history=settings.history,
                interval_ms=interval_ms,
                stop=self.stop,
                writer_busy=lambda: self.writer.pending > 0,
                on_stored=self._history_stored,
            )
            if settings.history
            else None
        )
        # One watch per interval for all connections: a gap is judged against every kline known, from any source.
        self.watches = {interval: SequenceWatch(interval_ms(interval)) for interval in settings.intervals}
        self.listing = ExchangeListing(
            rest=self.rest,
            configured=settings.symbols,
            refresh_seconds=settings.symbols_refresh_seconds,
            stop=self.stop,
            on_listing=self._listed,
        )
        self.derivatives = DerivativesRecorder(
            rest=self.rest,
            symbols=lambda: self.symbols,
            kline_intervals=settings.intervals,
            mark_intervals=mark_intervals(settings.intervals),
            stop=self.stop,
            klines_idle=self._klines_idle,
        )
        self.derivatives_repair = DerivativesRepair(
            rest=self.rest,
            symbols=lambda: self.symbols,
            mark_intervals=mark_intervals(settings.intervals),
            stop=self.stop,
            every_seconds=settings.repair_seconds,
            idle=lambda: not self.derivatives.busy,
        )
        self.funding_watch = FundingWatch()
        self.streamed_funding = StreamedFunding(stop=self.stop)
        self.connect_budget = TokenBucket(rate=CONNECT_ATTEMPTS_PER_SECOND, burst=CONNECT_ATTEMPTS_BURST)
        self._spawn: Spawn | None = None
        self._lock = threading.Lock()  # the connections, changed by the listing thread
        self.symbols: tuple[str, ...] = tuple(s.upper() for s in settings.symbols)
        groups = split_streams(settings.streams, settings.streams_per_connection)
        self.connections = [self._connection(f"connection {i}/{len(groups)}", g) for i, g in enumerate(groups, 1)]
        marks = split_streams(self._mark_streams(self.symbols), settings.streams_per_connection, name=_mark_name)
        self.mark_connections = (
            [self._mark_connection(f"mark prices {i}/{len(marks)}", g) for i, g in enumerate(marks, 1)]
            if settings.mark_prices
            else []
        )
        self._retired: list[Connection] = []

    def _connection(self, name: str, streams: tuple[tuple[str, str], ...]) -> Connection:
        return Connection(
            name=name,
            streams=streams,
            url=combined_stream_url(self.settings.ws_url, streams),
            ingestor=KlineIngestor(
                streams=streams,
                sink=lambda kline: self._closed(name, kline),
                on_update=self._in_progress if self.relay is not None else None,
            ),
        )

    def _mark_connection(self, name: str, streams: tuple[tuple[str, str], ...]) -> Connection:
        symbols = [symbol for symbol, _ in streams]
        return Connection(
            name=name,
            streams=streams,
            url=mark_stream_url(self.settings.ws_url, symbols),
            ingestor=MarkPriceIngestor(symbols=symbols, watch=self.funding_watch, sink=self.streamed_funding.offer),
        )

    @staticmethod
    def _mark_streams(symbols: Iterable[str]) -> list[tuple[str, str]]:
        return [(symbol, MARK_STREAM) for symbol in symbols]

    def _store(self, batch: Sequence[ClosedKline]) -> list[ClosedKline]:
        """Store a batch (``ingest_klines`` claimed the database for this exchange before the service ran)."""
        return save_klines(batch)

    def _request_backfill(self, streams: Iterable[tuple[str, str]]) -> None:
        by_interval: dict[str, list[str]] = {}
        for symbol, interval in streams:
            by_interval.setdefault(interval, []).append(symbol)
        for interval, symbols in by_interval.items():
            self.backfills[interval].request(symbols)

    # -- callbacks (reader and writer threads) ---------------------------------
    def _connected(self, connection: Connection) -> None:
        connection.connects += 1
        if isinstance(connection.ingestor, MarkPriceIngestor):
            return
        self._request_backfill(connection.streams)
        if self.history is not None:
            self.history.request(connection.streams)  # once per stream; after its live stream is up

    def _closed(self, connection: str, kline: ClosedKline) -> None:
        missing = self.watches[kline.interval].observe(kline.symbol, datetime_to_ms(kline.open_time))
        if missing is not None:
            logger.warning(
                "%s: the stream skipped %s %s klines before %s; backfilling them",
                connection,
                kline.symbol,
                kline.interval,
                kline.open_time,
            )
            self.backfills[kline.interval].request([kline.symbol], from_ms=missing)
        self.writer.offer(kline)

    def _in_progress(self, update: StreamUpdate) -> None:
        kline = update.kline
        text = json.dumps(update.data, separators=(",", ":"))  # encoded once, for every serving process
        self.relay.offer(stream_name(kline.symbol, kline.interval), datetime_to_ms(kline.open_time), text)

    def _klines_idle(self) -> bool:
        """No kline backfill, first-start history or queued write: the mark-price recorder may use the weight."""
        history = 0 if self.history is None else self.history.pending
        return not history and not self.writer.pending and all(b.idle for b in self.backfills.values())

    def _fetched(self, kline: ClosedKline) -> bool:
        self.watches[kline.interval].note(kline.symbol, datetime_to_ms(kline.open_time))
        return self.writer.put(kline, stop=self.stop)

    def _newest_stored(self, interval: str, symbol: str, open_time: datetime) -> None:
        self.watches[interval].note(symbol, datetime_to_ms(open_time))
        self.writer.note_newest(symbol, interval, open_time)

    def _history_stored(self, klines: list[ClosedKline]) -> None:
        newest = max(klines, key=lambda k: k.open_time)
        self._newest_stored(newest.interval, newest.symbol, newest.open_time)

    def _dropped(self, kline: ClosedKline) -> None:
        self.backfills[kline.interval].request([kline.symbol], from_ms=datetime_to_ms(kline.open_time))

    def _rejected(self, kline: ClosedKline) -> None:
        self.backfills[kline.interval].forget(kline)  # not stored: the hole repair fetches it again

    def _retry_backfills(self) -> None:
        for backfill in self.backfills.values():
            backfill.retry_now()

    # -- running ---------------------------------------------------------------
    def run(self, stop: threading.Event) -> int:
        """Ingest until ``stop`` is set; return the number of queued klines left unwritten.

        Raises :class:`IngestFailed`, after the same shutdown, when a thread died unexpectedly.
        """
        spawn = self._spawn = self.supervisor.spawn
        self.writer.start(spawn)
        for backfill in self.backfills.values():
            backfill.start(spawn)
        self._request_backfill(self.settings.streams)
        for repair in self.repairs.values():
            repair.start(spawn)
        if self.history is not None:
            self.history.start(spawn)
        self._backoff = Backoff(maximum=self.settings.reconnect_max_seconds)
        with self._lock:
            for connection in self.connections + self.mark_connections:
                self._start_reading(connection)
        if self.relay is not None:
            spawn("update relay", self.relay.run)
        spawn("exchange-listing", self.listing.run)
        if self.settings.mark_prices:
            spawn("mark price and funding", self.derivatives.run)
            spawn("funding from the stream", self.streamed_funding.run)
            spawn("mark price and funding hole repair", self.derivatives_repair.run)
        next_stats = time.monotonic() + self.settings.stats_seconds
        while not (stop.wait(TICK_SECONDS) or self.supervisor.failed.is_set()):
            if time.monotonic() >= next_stats:
                next_stats += self.settings.stats_seconds
                logger.info(self.stats_line())
        left = self._shut_down()
        if self.supervisor.failure is not None:
            raise IngestFailed(f"{self.supervisor.failure}; {left} queued klines left unwritten")
        return left

    def _start_reading(self, connection: Connection) -> None:
        assert self._spawn is not None
        connection.thread = self._spawn(
            connection.name,
            functools.partial(
                run_stream,
                connection.url,
                on_message=connection.ingestor.handle_message,
                stop=connection.stop,
                on_connect=functools.partial(self._connected, connection),
                silence_seconds=self.settings.silence_seconds,
                backoff=self._backoff,
                name=connection.name,
                stats=connection.stream_stats,
                connect_budget=self.connect_budget,
            ),
        )

    # -- the listing (KLINE_SYMBOLS=all) -------------------------------------------
    def _listed(self, listed: tuple[str, ...]) -> None:
        """The exchange's trading perpetuals changed: with ``KLINE_SYMBOLS=all``, record exactly those."""
        if not self.settings.all_symbols or self.stop.is_set():
            return
        with self._lock:
            plan = replan(
                [c.streams for c in self.connections],
                self.symbols,
                listed,
                self.settings.intervals,
                self.settings.streams_per_connection,
            )
            if not plan.added and not plan.gone:
                return
            base = len(self.connections) + len(self._retired)
            opened = [self._connection(f"connection {base + n}", g) for n, g in enumerate(plan.open, 1)]
            for n in plan.retire:
                self.connections[n].stop.set()
                self._retired.append(self.connections[n])
            self.connections = [self.connections[n] for n in plan.keep] + opened
            if self.settings.mark_prices:
                opened += self._replan_marks(listed)
            self.symbols = tuple(listed)
            for connection in opened:
                if self._spawn is not None:
                    self._start_reading(connection)
        added, gone = plan.added, plan.gone
        if added:
            logger.info("recording %d new listings: %s", len(added), ", ".join(added[:20]))
            self._request_backfill((s, i) for s in added for i in self.settings.intervals)
        if gone:
            logger.info(
                "no longer streaming %d delisted symbols (their klines stay): %s", len(gone), ", ".join(sorted(gone))
            )

    def _replan_marks(self, listed: tuple[str, ...]) -> list[Connection]:
        """The mark-price connections for ``listed``, as the kline ones (under the lock); return the new ones."""
        plan = replan(
            [c.streams for c in self.mark_connections],
            self.symbols,
            listed,
            (MARK_STREAM,),
            self.settings.streams_per_connection,
            name=_mark_name,
        )
        base = len(self.mark_connections) + len(self._retired)
        opened = [self._mark_connection(f"mark prices {base + n}", g) for n, g in enumerate(plan.open, 1)]
        for n in plan.retire:
            self.mark_connections[n].stop.set()
            self._retired.append(self.mark_connections[n])
        self.mark_connections = [self.mark_connections[n] for n in plan.keep] + opened
        return opened

    def _shut_down(self) -> int:
        stopped = time.monotonic()
        self.stop.set()
        with self._lock:
            for connection in self.connections + self.mark_connections:
                connection.stop.set()
        logger.info("stopping: %d klines queued, writing them before exit", self.writer.pending)
        for connection in self.connections + self.mark_connections:
            if connection.thread is not None:
                connection.thread.join(max(0.0, stopped + READERS_STOP_SECONDS - time.monotonic()))
        for backfill in self.backfills.values():
            backfill.join(0.1)
        left = self.writer.close(deadline=stopped + SHUTDOWN_SECONDS)
        logger.info(self.stats_line())
        if left:
            logger.error("%d klines still queued at exit (database unavailable?); the next start backfills them", left)
        waiting = sum(backfill.pending for backfill in self.backfills.values())
        if waiting:
            logger.warning(
                "%d symbols still wait for a backfill (REST or the database unavailable?); "
                "the next start backfills them and refills any hole",
                waiting,
            )
        return left

    # -- visibility --------------------------------------------------------------
    def counters(self) -> Counters:
        connections = self.connections + self.mark_connections + self._retired
        ingest = [c.ingestor.stats for c in connections]
        history = self.history.stats if self.history is not None else HistoryStats()
        return Counters(
            messages=sum(s.received for s in ingest),
            stored=self.writer.stats.stored + history.stored,
            duplicates=self.writer.stats.duplicates + history.duplicates,
            malformed=sum(s.malformed for s in ingest),
            malformed_kinds=dict(sum((s.malformed_kinds for s in ingest), Counter())),
            unknown=sum(s.ignored for s in ingest),
            reconnects=sum(max(0, c.connects - 1) for c in connections),
            dropped=self.writer.stats.dropped,
            queued=self.writer.pending,
            backfilled=sum(b.stats.fetched for b in self.backfills.values())
            + sum(r.stats.fetched for r in self.repairs.values())
            + history.fetched,
            rejected=self.writer.stats.rejected,
            pongs_skipped=sum(c.stream_stats.pongs_skipped for c in connections),
            rate_limited=self.rest.rate_limited,
            funding_streamed=self.streamed_funding.stats.stored,
            funding_corrected=dict(self.derivatives.corrected),
            derivatives_repaired=self.derivatives_repair.stats.fetched,
        )

    def lags(self) -> dict[str, float | None]:
        streams = [(s, i) for s in self.symbols for i in self.settings.intervals]
        return lag_seconds(dict(self.writer.newest), streams, now_ms=self.exchange_now_ms())

    def exchange_now_ms(self) -> int:
        """The exchange's clock: our clock plus the offset REST measured, or the newest event time read if that is
        later (a simulator's clock runs fast: the offset measured at the last REST call is already behind)."""
        events = [c.ingestor.stats.latest_event_ms for c in self.connections]
        return max([self.rest.exchange_now_ms(), *(e for e in events if e is not None)])

    def stats_line(self) -> str:
        return format_stats(self.counters(), self.lags())


def _mark_name(symbol: str, _stream: str) -> str:
    return mark_stream_name(symbol)
