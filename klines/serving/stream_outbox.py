"""One stream connection's outgoing events: every one, in order, sent by the connection's own task.

Unlike the seed feed's :class:`~klines.serving.outbox.Outbox`, nothing is
coalesced: Binance's streams send every update of a stream in order. The hub
only appends an already encoded frame and never awaits a socket; the queue is
bounded in bytes (what is queued plus what the server says it buffered for the
peer), and past ``max_owed`` the connection is given up as too slow.

An event's :class:`~klines.serving.delivery.Delivery` rides in the queue just
before the first of its frames for this connection (one per connection, not
per frame: the frames of one batch go out back to back).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable

from klines.serving.delivery import Delivery
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
        self._frames: deque[str | Delivery] = deque()  # ``owed``: bytes queued, not yet handed to the server
        self._last_delivery: Delivery | None = None

    def put(self, frame: str, delivery: Delivery | None = None) -> None:
        """Queue one frame (a reply or an event, timed by ``delivery``); never waits."""
        if self.stopped:
            return
        if delivery is not None and delivery is not self._last_delivery:
            self._last_delivery = delivery
            delivery.owed += 1
            self._frames.append(delivery)
        self._frames.append(frame)
        self._owe(len(frame))

    def _forget(self) -> None:
        deliveries = [item for item in self._frames if type(item) is Delivery]
        self._frames.clear()
        self._last_delivery = None
        for delivery in deliveries:
            delivery.dropped()

    def _next_frame(self) -> str | None:
        frames = self._frames
        while frames:
            item = frames.popleft()
            if type(item) is str:
                return item
            self._sending = item  # the next frame carries it
            if item is self._last_delivery:  # put again later (a reconcile reads in pages): count it again
                self._last_delivery = None
        return None

    def _owed_after(self, frame: str) -> int:
        self.owed -= len(frame)
        return self.owed
