"""Fan-out latency: from a close stored (or an update received) to the last of its frames sent, per process.

The feed makes one :class:`Delivery` per event it fans out (a close from the
channel layer, the closes one reconcile found, a batch of relayed updates),
starting at the ingest's clock: ``stored_at`` for closes, the time the ingest
received the batch's first update for updates. Each sender that is given a
frame carrying it counts it as owed and, when the frame has been handed to the
server (``send`` returned) or dropped (superseded, connection gone), settles
it. Once the fan-out is sealed and every connection has settled, the time of
the last frame sent is observed, once.

One observation per event per process, not per frame: at 1,000 clients a close
costs a counter decrement and a clock read per connection, and one histogram
observation (bench ``--only timing``, in bench/README.md). It says when the
last client got the event, which is what an operator asks of a fan-out.
"""

from __future__ import annotations

import time

from klines.serving.metrics import FANOUT_SECONDS

CLOSE = "close"
UPDATE = "update"


class Delivery:
    __slots__ = ("kind", "started", "owed", "last_sent", "sealed")

    def __init__(self, kind: str, started: float | None = None) -> None:
        self.kind = kind
        self.started = started  # the ingest's clock (epoch seconds); None: nothing fanned out yet
        self.owed = 0  # frames carrying it, queued and not yet sent or dropped
        self.last_sent: float | None = None
        self.sealed = False

    def since(self, started: float) -> None:
        """An event of this fan-out started at ``started``: the delivery times the oldest."""
        if self.started is None or started < self.started:
            self.started = started

    def sent(self) -> None:
        """A frame carrying it was handed to the server."""
        self.last_sent = time.time()
        self.owed -= 1
        if not self.owed and self.sealed:
            self._observe()

    def dropped(self) -> None:
        """A frame carrying it will not be sent (superseded by a newer frame, or the connection is gone)."""
        self.owed -= 1
        if not self.owed and self.sealed:
            self._observe()

    def seal(self) -> None:
        """The fan-out is done: no connection will be given it any more."""
        self.sealed = True
        if not self.owed:
            self._observe()

    def _observe(self) -> None:
        if self.last_sent is not None and self.started is not None:
            FANOUT_SECONDS.labels(self.kind).observe(max(0.0, self.last_sent - self.started))
        self.last_sent = None  # observed once
