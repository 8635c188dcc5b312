"""One connection's outgoing frames: at most one pending per coin, always the book's newest.

The feed's fan-out only marks a coin as changed in each connection's outbox; it
never awaits a socket. Each outbox has its own sender task, which sends, at send
time, the book's current frame of every marked coin, in the order they were
marked. So whatever order database reads and layer messages arrive in, the last
frame a client gets for a coin is the book's frame for it; a client that reads
slowly skips superseded frames rather than getting an older one after a newer
one; and it cannot hold up the others (under uvicorn ``send`` waits while the
peer does not read; under daphne it never waits).

Backpressure (:mod:`klines.serving.sender`): ``owed`` counts the bytes of
frames published to this connection since its last send finished, plus what
the server says it has buffered for it.

A coin marked with a :class:`~klines.serving.delivery.Delivery` carries it on
its next frame; marked again before that frame is sent, it keeps the older
delivery (that frame delivers both) and drops the newer one.
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
    ) -> None:
        super().__init__(send, max_owed=max_owed, too_slow=too_slow, buffered=buffered)
        self._frame_of = frame_of
        self._pending: dict[str, Delivery | None] = {}  # the coins to send, in order, with their delivery
        self._sent: dict[str, str] = {}  # the last frame sent per coin (the book's shared string)

    def offer(self, symbols: Iterable[str], size: int = 0, delivery: Delivery | None = None) -> None:
        """Mark ``symbols`` as changed (``size`` bytes of new frames, timed by ``delivery``); never waits."""
        if self.stopped:
            return
        pending = self._pending
        if delivery is None:
            for symbol in symbols:
                pending.setdefault(symbol, None)
        else:
            for symbol in symbols:
                if pending.get(symbol) is None:
                    pending[symbol] = delivery
                    delivery.owed += 1
        self._owe(size)

    def _forget(self) -> None:
        deliveries = [delivery for delivery in self._pending.values() if delivery is not None]
        self._pending.clear()
        for delivery in deliveries:
            delivery.dropped()

    def _next_frame(self) -> str | None:
        while self._pending:
            symbol = next(iter(self._pending))
            delivery = self._pending.pop(symbol)
            frame = self._frame_of(symbol)
            if self._sent.get(symbol) is not frame:  # marked twice, sent already: nothing new
                self._sent[symbol] = frame
                self._sending = delivery
                return frame
            if delivery is not None:
                delivery.dropped()
        return None

    def _owed_after(self, frame: str) -> int:
        self.owed = 0  # frames are sent whole and current: what was published is now sent
        return 0
