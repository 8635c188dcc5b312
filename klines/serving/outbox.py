"""One connection's outgoing frames on ``/``: a frame per change of a coin, in the order of the changes.

The feed's fan-out only hands each connection's outbox the book's frame of the
coins that changed (the book's own shared string, so this costs a reference,
not a copy); it never awaits a socket. Each outbox has its own sender, which
sends them in the order they were offered. So every close a process's book
takes reaches every client as its own frame, even when two closes of a coin
come before the sender runs (a starved process); frames follow the book's
order, so a newer frame is never followed by an older one; and a client that
does not read cannot hold up the others (under uvicorn ``send`` waits while
the peer does not read; under daphne it never waits).

Backpressure (:mod:`klines.serving.sender`): ``owed`` counts the bytes of the
frames offered and not yet sent, plus what the server says it has buffered
for the connection; past the bound the client is closed as too slow.

Offered again while the book's frame has not changed (a second look at a coin
that did not move), a coin adds nothing. A frame offered with a
:class:`~klines.serving.delivery.Delivery` carries it until it is sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from klines.serving.delivery import Delivery
from klines.serving.sender import BoundedSender, Sender


class Outbox(BoundedSender):
    task_name = "klines-outbox"

    def __init__(
        self,
        frame_of: Callable[[str], str],
        send: Sender,
        *,
        max_owed: int,
        too_slow: Callable[[int], Awaitable[None]],
        buffered: Callable[[], int | None] = lambda: None,
        send_now: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(send, max_owed=max_owed, too_slow=too_slow, buffered=buffered, send_now=send_now)
        self._frame_of = frame_of
        self._queue: list[tuple[str, Delivery | None]] = []  # frames to send, oldest first, with their delivery
        self._latest: dict[str, str] = {}  # per coin, the newest frame offered (the book's shared string)

    def offer(self, symbols: Iterable[str], delivery: Delivery | None = None) -> None:
        """Queue the book's current frame of each of ``symbols`` that changed (timed by ``delivery``); never waits."""
        if self.stopped:
            return
        latest = self._latest
        size = 0
        for symbol in symbols:
            frame = self._frame_of(symbol)
            if latest.get(symbol) is frame:  # offered already: nothing new for this coin
                continue
            latest[symbol] = frame
            self._queue.append((frame, delivery))
            if delivery is not None:
                delivery.owed += 1
            size += len(frame)
        if size:
            self._owe(size)

    def _forget(self) -> None:
        queued, self._queue = self._queue, []
        for _frame, delivery in queued:
            if delivery is not None:
                delivery.dropped()

    def _next_frame(self) -> str | None:
        if not self._queue:
            return None
        frame, self._sending = self._queue.pop(0)
        return frame

    def _owed_after(self, frame: str) -> int:
        self.owed = max(0, self.owed - len(frame))
        return self.owed
