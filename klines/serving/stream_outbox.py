"""One stream connection's outgoing events: every one, in order, sent by the connection's own task.

Unlike the seed feed's :class:`~klines.serving.outbox.Outbox`, nothing is
coalesced: Binance's streams send every update of a stream in order. The hub
only appends an already encoded frame and never awaits a socket; the queue is
bounded in bytes (what is queued plus what the server says it buffered for the
peer), and past ``max_owed`` the connection is given up as too slow.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable

from klines.serving.metrics import STREAMS
from klines.serving.sender import BoundedSender, Sender


class FrameQueue(BoundedSender):
    task_name = "klines-stream-queue"
    endpoint = STREAMS

    def __init__(
        self,
        send: Sender,
        *,
        max_owed: int,
        too_slow: Callable[[int], Awaitable[None]],
        buffered: Callable[[], int | None] = lambda: None,
    ) -> None:
        super().__init__(send, max_owed=max_owed, too_slow=too_slow, buffered=buffered)
        self._frames: deque[str] = deque()  # ``owed``: bytes queued, not yet handed to the server

    def put(self, frame: str) -> None:
        """Queue one frame (a reply or an event); never waits."""
        if self.stopped:
            return
        self._frames.append(frame)
        self._owe(len(frame))

    def _forget(self) -> None:
        self._frames.clear()

    def _next_frame(self) -> str | None:
        return self._frames.popleft() if self._frames else None

    def _owed_after(self, frame: str) -> int:
        self.owed -= len(frame)
        return self.owed
