"""One connection's outgoing frames on ``/``: one frame per change of a coin's newest close, latest state wins.

The feed's fan-out only marks, in each connection's outbox, the coins whose
frame changed; it never awaits a socket. Each outbox has its own sender, which
sends, in the order the coins were marked, the book's frame of each *at send
time*. So:

* a coin is sent when its newest close is newer than the newest close of the
  last frame the connection got for it (the first frame of a coin always goes);
  history that reaches the book below a close already sent (a backfill after a
  live close) changes that coin's frame but sends nothing: the next close's
  frame carries it;
* a coin marked again before its frame went out is not queued twice: the one
  frame sent is the book's newest (a client that keeps up gets a frame per
  close; one that falls behind, or a process starved of CPU, skips to the
  newest, never an older frame after a newer one);
* a client that does not read cannot hold up the others (under uvicorn
  ``send`` waits while the peer does not read; under daphne it never waits).

Backpressure (:mod:`klines.serving.sender`): ``owed`` counts the bytes of
every frame offered since the connection's last send finished (a frame
replaced before it went out counts too: the client fell behind by it), plus
what the server says it has buffered for the connection; past the bound the
client is closed as too slow. So a client whose ``send`` never returns (uvicorn,
a peer that stopped reading) is given up as before, although at most one frame
per coin waits for it.

A coin marked with a :class:`~klines.serving.delivery.Delivery` carries it on
its next frame; marked again before that frame is sent, it keeps the older
delivery (that frame delivers both) and drops the newer one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime

from klines.serving.delivery import Delivery
from klines.serving.sender import BoundedSender, Sender

_NOTHING = object()  # no frame of the coin sent yet


def newer(newest: datetime | None, sent: object) -> bool:
    """Whether a frame ending at ``newest`` may follow one ending at ``sent`` (``_NOTHING``: none was sent)."""
    return sent is _NOTHING or (newest is not None and (sent is None or newest > sent))


class Outbox(BoundedSender):
    task_name = "klines-outbox"

    def __init__(
        self,
        frame_of: Callable[[str], str],
        newest_of: Callable[[str], datetime | None],
        send: Sender,
        *,
        max_owed: int,
        too_slow: Callable[[int], Awaitable[None]],
        buffered: Callable[[], int | None] = lambda: None,
        send_now: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(send, max_owed=max_owed, too_slow=too_slow, buffered=buffered, send_now=send_now)
        self._frame_of = frame_of
        self._newest_of = newest_of  # the open time of the newest close in a coin's current frame
        self._pending: dict[str, tuple[int, Delivery | None]] = {}  # coin -> (bytes owed, delivery), in order
        self._newest_sent: dict[str, object] = {}  # coin -> newest close of the last frame sent
        self._pending_bytes = 0  # the current frames of the coins in ``_pending``

    def offer(self, symbols: Iterable[str], delivery: Delivery | None = None) -> None:
        """Mark each of ``symbols`` whose newest close is news to this client (timed by ``delivery``); never waits."""
        if self.stopped:
            return
        pending, sent = self._pending, self._newest_sent
        size = 0
        for symbol in symbols:
            if not newer(self._newest_of(symbol), sent.get(symbol, _NOTHING)):
                continue
            length = len(self._frame_of(symbol))
            size += length
            held = pending.get(symbol)
            if held is None:
                pending[symbol] = (length, delivery)
                self._pending_bytes += length
                if delivery is not None:
                    delivery.owed += 1
            else:  # its frame has not gone out yet: the one that will is the book's newest
                pending[symbol] = (length, held[1])
                self._pending_bytes += length - held[0]
        if size:
            self._owe(size)

    def _forget(self) -> None:
        deliveries = [delivery for _size, delivery in self._pending.values() if delivery is not None]
        self._pending.clear()
        self._pending_bytes = 0
        for delivery in deliveries:
            delivery.dropped()

    def _next_frame(self) -> str | None:
        while self._pending:
            symbol = next(iter(self._pending))
            size, delivery = self._pending.pop(symbol)
            self._pending_bytes -= size
            newest = self._newest_of(symbol)
            if newer(newest, self._newest_sent.get(symbol, _NOTHING)):
                self._newest_sent[symbol] = newest
                self._sending = delivery
                return self._frame_of(symbol)
            if delivery is not None:
                delivery.dropped()
        return None

    def _owed_after(self, frame: str) -> int:
        self.owed = self._pending_bytes  # the frames replaced while it was sent are gone too
        return self.owed
