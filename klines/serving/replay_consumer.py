"""``/market/replay/stream``: the record's klines of a range, replayed as Binance's combined kline stream.

Parameters are checked at the handshake (:func:`~klines.serving.replay.parse_replay`);
a bad one refuses the connection with the reason (HTTP 400 under daphne), as
the live streams do. Once open, the connection's own task reads each stream in
batches on the replay's read threads (never in the event loop, never Django's
one thread-sensitive worker), merges them by close time, paces them by
``speed`` and ends with a normal close, reason ``replay complete``.

Backpressure: before each frame the task waits until the server has at most
:data:`HIGH_WATER` bytes buffered for the client (:mod:`klines.serving.backpressure`;
under a server whose ``send`` waits, the send itself waits). So a slow reader
slows the replay instead of filling the process's memory: a replay holds one
batch per stream and at most about :data:`HIGH_WATER` bytes of frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.db import connection

from klines.api.recorded import recorded, refresh_recorded
from klines.api.stream_protocol import ProtocolError
from klines.binance.parse import datetime_to_ms, ms_to_datetime
from klines.serving.backpressure import pending_bytes
from klines.serving.feed import get_feed
from klines.serving.lean import LeanConsumer
from klines.serving.replay import (
    CLOSE_COMPLETE,
    COMPLETE_REASON,
    Replay,
    due_after,
    next_stream,
    parse_replay,
    read_batch,
    replay_frame,
)
from klines.store.reads import klines_in_batches
from klines.store.records import KlineRecord

logger = logging.getLogger(__name__)

CLOSE_BAD_REQUEST = 4400  # before accept: daphne answers HTTP 400 with the reason
CLOSE_FAILED = 1011
CLOSE_TRY_AGAIN_LATER = 1013  # the process has WS_MAX_CONNECTIONS clients, replays included
HIGH_WATER = 64 * 1024  # bytes the server may hold for a client before the replay waits
DRAIN_POLL_SECONDS = 0.002  # the first wait for a client to read; doubled up to ...
MAX_DRAIN_POLL_SECONDS = 0.02

# Two threads: replays read in parallel with each other, and never wait behind the live feed's reads.
_reads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="klines-replay-db")


def _next_batch(batches: Iterator[list[KlineRecord]]) -> list[KlineRecord]:
    try:
        return next(batches, [])
    except Exception:
        connection.close()  # this thread's connection: the next read starts afresh
        raise


async def read_next(batches: Iterator[list[KlineRecord]]) -> list[KlineRecord]:
    """The next batch of a stream's cursor, read on a replay read thread."""
    return await sync_to_async(_next_batch, thread_sensitive=False, executor=_reads)(batches)


class ReplayConsumer(LeanConsumer):
    running = 0  # replays connected to this process: they count against WS_MAX_CONNECTIONS with the feed's clients
    _task: asyncio.Task | None = None
    _counted = False

    async def connect(self) -> None:
        try:
            await refresh_recorded()
            symbols, intervals = recorded()
            replay = parse_replay(
                self.scope.get("query_string", b"").decode("latin-1"),
                symbols=symbols,
                intervals=intervals,
                now_ms=int(time.time() * 1000),
            )
        except ProtocolError as exc:
            logger.info("refusing a replay: %s", exc.msg)
            await self.close(code=CLOSE_BAD_REQUEST, reason=exc.msg)
            return
        feed = get_feed()
        await self.accept()
        if feed.client_count + ReplayConsumer.running >= feed.settings.ws_max_connections:
            logger.warning("refusing a replay: this process is at its WS_MAX_CONNECTIONS")
            await self.close(code=CLOSE_TRY_AGAIN_LATER, reason="server full, try again later")
            return
        ReplayConsumer.running += 1
        self._counted = True
        self._task = asyncio.create_task(self._run(replay), name="klines-replay")

    async def _run(self, replay: Replay) -> None:
        try:
            sent = await self._send_all(replay)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("a replay failed; closing its connection")
            with contextlib.suppress(Exception):
                await self.close(code=CLOSE_FAILED, reason="replay failed")
            return
        logger.info("replay complete: %d events of %d streams", sent, len(replay.streams))
        await self.close(code=CLOSE_COMPLETE, reason=COMPLETE_REASON)

    async def _send_all(self, replay: Replay) -> int:
        """Send every kline of the replay in close-time order, paced; return how many were sent."""
        batch = read_batch(len(replay.streams))
        start, end = ms_to_datetime(replay.start_ms), ms_to_datetime(replay.end_ms)
        names = [str(stream) for stream in replay.streams]
        cursors = [klines_in_batches(s.symbol, s.interval, start, end, batch) for s in replay.streams]
        pending: list[deque[KlineRecord]] = [deque() for _ in replay.streams]
        more = [True] * len(replay.streams)  # the stream's cursor may hold more
        loop = asyncio.get_running_loop()
        first: tuple[float, int] | None = None  # (loop time, close time) of the first event
        sent = 0
        while True:
            for index, rows in enumerate(pending):
                if not rows and more[index]:
                    read = await read_next(cursors[index])
                    rows.extend(read)
                    more[index] = len(read) == batch
            index = next_stream(pending)
            if index is None:
                return sent
            kline = pending[index].popleft()
            close_ms = datetime_to_ms(kline.close_time)
            if first is None:
                first = (loop.time(), close_ms)
            elif replay.speed:
                delay = first[0] + due_after(first[1], close_ms, replay.speed) - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            await self._drained()
            await self.send(text_data=replay_frame(names[index], kline))
            sent += 1
            await asyncio.sleep(0)  # daphne's send never suspends: let the other connections (and ours) run

    async def _drained(self) -> None:
        """Wait while the server holds more than :data:`HIGH_WATER` bytes for the client."""
        poll = DRAIN_POLL_SECONDS
        while True:  # polled: ASGI gives the application no "drained" event to wait on
            buffered = pending_bytes(self.base_send)
            if buffered is None or buffered <= HIGH_WATER:
                return
            await asyncio.sleep(poll)
            poll = min(poll * 2, MAX_DRAIN_POLL_SECONDS)  # a client that stopped reading costs 50 wakeups/s

    async def disconnect(self, code: int) -> None:
        if self._counted:
            self._counted = False
            ReplayConsumer.running -= 1
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
