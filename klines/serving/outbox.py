"""One connection's outgoing frames: at most one pending per coin, always the book's newest.

The feed's fan-out only marks a coin as changed in each connection's outbox; it
never awaits a socket. Each outbox has its own sender task, which sends, at send
time, the book's current frame of every marked coin, in the order they were
marked. So whatever order database reads and layer messages arrive in, the last
frame a client gets for a coin is the book's frame for it; a client that reads
slowly skips superseded frames rather than getting an older one after a newer
one; and it cannot hold up the others (under uvicorn ``send`` waits while the
peer does not read; under daphne it never waits).

Backpressure is the feed's: ``owed`` counts the bytes of frames published to
this connection since its last send finished, plus what the server says it has
buffered for it (daphne's ``send`` returns at once and buffers without bound;
see :mod:`klines.serving.backpressure`). Past ``max_owed`` the outbox stops and
reports the connection as too slow.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

logger = logging.getLogger(__name__)

Sender = Callable[[str], Awaitable[None]]


class Outbox:
    def __init__(
        self,
        frame_of: Callable[[str], str],
        send: Sender,
        *,
        max_owed: int,
        too_slow: Callable[[int], Awaitable[None]],
        buffered: Callable[[], int | None] = lambda: None,
    ) -> None:
        self._frame_of = frame_of
        self._send = send
        self._max_owed = max_owed
        self._too_slow = too_slow
        self._buffered = buffered
        self._pending: dict[str, None] = {}  # an ordered set of coins to send
        self._sent: dict[str, str] = {}  # the last frame sent per coin (the book's shared string)
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.owed = 0
        self.stopped = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="klines-outbox")

    def stop(self) -> None:
        """Send nothing more (the connection is gone or given up)."""
        self.stopped = True
        self._pending.clear()
        if self._task is not None and not self._task.done() and self._task is not _current_task():
            self._task.cancel()

    def offer(self, symbols: Iterable[str], size: int = 0) -> None:
        """Mark ``symbols`` as changed (``size`` bytes of new frames); never waits."""
        if self.stopped:
            return
        for symbol in symbols:
            self._pending[symbol] = None
        self.owed += size
        if self.owed > self._max_owed:
            self._give_up(self.owed)
            return
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending and not self.stopped:
                symbol = next(iter(self._pending))
                del self._pending[symbol]
                frame = self._frame_of(symbol)
                if self._sent.get(symbol) is frame:  # marked twice, sent already: nothing new
                    continue
                self._sent[symbol] = frame
                try:
                    await self._send(frame)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the peer went away mid-send: nothing more to do for it
                    logger.info("sending to a client failed (%s); it gets no more frames", exc)
                    self.stop()
                    return
                self.owed = 0
                buffered = self._buffered()
                if buffered is not None and buffered > self._max_owed:
                    self._give_up(buffered)
                    return

    def _give_up(self, owed: int) -> None:
        self.stop()
        # Closing can wait as long as a send would (uvicorn), so it runs on its own.
        task = asyncio.create_task(self._too_slow(owed), name="klines-outbox-close")
        _closing.add(task)
        task.add_done_callback(_closing.discard)


def _current_task() -> asyncio.Task | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no running loop (a test resetting the feed between loops)
        return None


_closing: set[asyncio.Task] = set()  # keep the close tasks referenced until done
