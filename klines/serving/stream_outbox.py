"""One stream connection's outgoing events: every one, in order, sent by the connection's own task.

Unlike the seed feed's :class:`~klines.serving.outbox.Outbox`, nothing is
coalesced: Binance's streams send every update of a stream in order. The hub
only appends an already encoded frame and never awaits a socket; the queue is
bounded in bytes (what is queued plus what the server says it buffered for the
peer), and past ``max_owed`` the connection is given up as too slow.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)

Sender = Callable[[str], Awaitable[None]]


class FrameQueue:
    def __init__(
        self,
        send: Sender,
        *,
        max_owed: int,
        too_slow: Callable[[int], Awaitable[None]],
        buffered: Callable[[], int | None] = lambda: None,
    ) -> None:
        self._send = send
        self._max_owed = max_owed
        self._too_slow = too_slow
        self._buffered = buffered
        self._frames: deque[str] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.owed = 0  # bytes queued, not yet handed to the server
        self.stopped = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="klines-stream-queue")

    def stop(self) -> None:
        self.stopped = True
        self._frames.clear()
        if self._task is not None and not self._task.done() and self._task is not _current_task():
            self._task.cancel()

    def put(self, frame: str) -> None:
        """Queue one frame (a reply or an event); never waits."""
        if self.stopped:
            return
        self._frames.append(frame)
        self.owed += len(frame)
        if self.owed > self._max_owed:
            self._give_up(self.owed)
            return
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._frames and not self.stopped:
                frame = self._frames.popleft()
                try:
                    await self._send(frame)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the peer went away mid-send
                    logger.info("sending to a stream client failed (%s); it gets no more events", exc)
                    self.stop()
                    return
                self.owed -= len(frame)
                buffered = self._buffered()
                if buffered is not None and buffered + self.owed > self._max_owed:
                    self._give_up(buffered + self.owed)
                    return

    def _give_up(self, owed: int) -> None:
        self.stop()
        task = asyncio.create_task(self._too_slow(owed), name="klines-stream-close")
        _closing.add(task)
        task.add_done_callback(_closing.discard)


def _current_task() -> asyncio.Task | None:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


_closing: set[asyncio.Task] = set()
