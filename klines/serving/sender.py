"""A connection's sender: its frames go out on a task of its own, so a fan-out never awaits a socket.

Backpressure is the feed's, the same for every kind of connection: ``owed``
counts bytes handed to the connection and not yet sent, plus what the server
says it buffered for the peer (daphne's ``send`` returns at once and buffers
without bound; see :mod:`klines.serving.backpressure`). Past ``max_owed`` the
sender stops and reports the connection as too slow (``too_slow`` closes it, on
a task of its own: under uvicorn a close waits as long as a send would).

A frame may carry a :class:`~klines.serving.delivery.Delivery` (``_sending``,
set by :meth:`_next_frame`): it is settled once ``send`` returns, or dropped if
the connection stops first, which times the fan-out to the frame actually sent.

The task runs only while there is something to send and ends when the
connection is caught up; the next frame starts a new one. An idle connection
(most of them, most of the time) so holds no task, coroutine or event: about
1.8 KB less each (bench/README.md, "Many clients"). Given ``send_now`` (a
server that sends at once, :mod:`klines.serving.immediate`), the loop needs no
task: the frames go out within the offer, in the same order, with the same
accounting.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from klines.serving.delivery import Delivery
from klines.serving.metrics import CLIENTS_CLOSED, FRAMES_SENT, ROOT

logger = logging.getLogger(__name__)

Sender = Callable[[str], Awaitable[None]]


class BoundedSender:
    """The send loop; subclasses say what to send next (:meth:`_next_frame`) and what is still owed after it."""

    task_name = "klines-sender"
    endpoint = ROOT  # the metrics label of its connections

    def __init__(
        self,
        send: Sender,
        *,
        max_owed: int,
        too_slow: Callable[[int], Awaitable[None]],
        buffered: Callable[[], int | None] = lambda: None,
        send_now: Callable[[str], None] | None = None,
    ) -> None:
        self._send = send
        self._send_now = send_now  # sends a frame at once, if the server can (klines.serving.immediate)
        self._max_owed = max_owed
        self._too_slow = too_slow
        self._buffered = buffered
        self._task: asyncio.Task | None = None  # the send loop, while there is something to send
        self._started = False
        self.owed = 0
        self.stopped = False
        self._sending: Delivery | None = None  # carried by the frame being sent

    def start(self) -> None:
        """Begin sending: what was offered so far now, and from then on whatever comes."""
        self._started = True
        self._wake()

    def _wake(self) -> None:
        """Run the send loop unless it is running (it takes what comes while it sends) or must not."""
        if self._task is None and self._started and not self.stopped:
            if self._send_now is not None:
                self._send_all_now()
            else:
                self._task = asyncio.create_task(self._run(), name=self.task_name)

    def stop(self) -> None:
        """Send nothing more (the connection is gone or given up)."""
        self.stopped = True
        self._forget()
        if self._sending is not None:
            self._sending.dropped()
            self._sending = None
        task, self._task = self._task, None  # a cancelled task keeps its traceback, whose frame holds self: a cycle
        if task is not None and not task.done() and task is not _current_task():
            task.cancel()

    def _owe(self, size: int) -> None:
        """``size`` more bytes are waiting; wake the sender, or give up past the bound."""
        self.owed += size
        if self.owed > self._max_owed:
            self._give_up(self.owed)
            return
        self._wake()

    def _forget(self) -> None:
        """Drop what is waiting (and the deliveries it carries)."""
        raise NotImplementedError

    def _next_frame(self) -> str | None:
        """The next frame to send, ``None`` when there is none; sets ``_sending`` if it carries a delivery."""
        raise NotImplementedError

    def _owed_after(self, frame: str) -> int:
        """Account for ``frame`` having been sent; return what is still owed."""
        raise NotImplementedError

    async def _run(self) -> None:
        try:
            while not self.stopped and (frame := self._next_frame()) is not None:
                try:
                    await self._send(frame)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the peer went away mid-send: nothing more to do for it
                    self._failed(exc)
                    return
                if not self._sent(frame):
                    return
        finally:  # caught up (no await since the last look), stopped or cancelled: the next offer starts anew
            self._task = None

    def _send_all_now(self) -> None:
        """The send loop without a task, for a server that sends at once (``send_now``)."""
        send_now = self._send_now
        while not self.stopped and (frame := self._next_frame()) is not None:
            try:
                send_now(frame)
            except Exception as exc:
                self._failed(exc)
                return
            if not self._sent(frame):
                return

    def _failed(self, exc: Exception) -> None:
        logger.info("sending to a client failed (%s); it gets nothing more", exc)
        self.stop()

    def _sent(self, frame: str) -> bool:
        """Account for ``frame`` handed to the server; whether to go on (the client is not too slow)."""
        _frames_sent(self.endpoint).inc()
        if self._sending is not None:
            self._sending.sent()
            self._sending = None
        owed = self._owed_after(frame)
        buffered = self._buffered()
        if buffered is not None and buffered + owed > self._max_owed:
            self._give_up(buffered + owed)
            return False
        return True

    def _give_up(self, owed: int) -> None:
        self.stop()
        CLIENTS_CLOSED.labels("slow").inc()
        task = asyncio.create_task(self._too_slow(owed), name=f"{self.task_name}-close")
        _closing.add(task)
        task.add_done_callback(_closing.discard)


@functools.cache
def _frames_sent(endpoint: str) -> Any:
    """The sent-frames counter of ``endpoint`` (prometheus' ``labels()`` takes a lock and builds a key per call)."""
    return FRAMES_SENT.labels(endpoint)


def _current_task() -> asyncio.Task | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no running loop (a test resetting the feed between loops)
        return None


_closing: set[asyncio.Task] = set()  # keep the close tasks referenced until done
