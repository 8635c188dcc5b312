"""The serving process's hub of Binance-protocol stream subscriptions: stream name -> connections.

The feed hands the hub every stored close it learns of (from the channel layer
and from reconciling with the database) and every batch of in-progress updates
relayed by the ingest. For each event the hub encodes the frame once as a raw
event and, only if a subscriber wants it, once as a combined frame, and appends
it to each subscriber's :class:`~klines.serving.stream_outbox.FrameQueue`; it
never awaits a socket.

Per stream it remembers the newest close it knows: a close arriving again
(from the other path, or from a second ingest) or an older one, and an
in-progress update of a kline already closed, are not sent, so each close
reaches a connection once and a stream never goes back in time; a connection
gets only closes newer than the newest its process knew when it subscribed.

History is never sent as live: a close the ingest published as superseded
(``live=False``: a backfill's klines but the newest, :func:`klines.events.closed_messages`)
only moves the mark. A close's event time ``E`` is its own: the moment the
kline closed (its close time + 1 ms, within milliseconds of Binance's ``E``),
whenever and by whichever path it reaches the process.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from klines.api.stream_events import EventKline, combined_frame, encode, kline_event
from klines.binance.parse import datetime_to_ms, stream_name
from klines.serving.delivery import Delivery
from klines.serving.stream_outbox import FrameQueue


class Subscriber(Protocol):
    combined: bool
    queue: FrameQueue


class StreamHub:
    def __init__(self) -> None:
        self._subscribers: dict[str, dict[Subscriber, None]] = {}
        self._streams: dict[Subscriber, dict[str, None]] = {}  # per connection, in subscription order
        self._newest_closed: dict[str, int] = {}  # stream -> open time (ms) of the newest close delivered
        self.closes_sent = 0
        self.updates_sent = 0

    # -- subscriptions --------------------------------------------------------
    def attach(self, client: Subscriber) -> None:
        self._streams.setdefault(client, {})

    def subscribe(self, client: Subscriber, streams: Iterable[str]) -> None:
        held = self._streams.setdefault(client, {})
        for stream in streams:
            held[stream] = None
            self._subscribers.setdefault(stream, {})[client] = None

    def unsubscribe(self, client: Subscriber, streams: Iterable[str]) -> None:
        held = self._streams.get(client, {})
        for stream in streams:
            held.pop(stream, None)
            subscribers = self._subscribers.get(stream)
            if subscribers is not None:
                subscribers.pop(client, None)
                if not subscribers:
                    del self._subscribers[stream]

    def streams_of(self, client: Subscriber) -> list[str]:
        return list(self._streams.get(client, {}))

    def detach(self, client: Subscriber) -> None:
        self.unsubscribe(client, list(self._streams.get(client, {})))
        self._streams.pop(client, None)

    def stop_all(self) -> None:
        """Stop every connection's queue (the feed is being reset)."""
        for client in list(self._streams):
            client.queue.stop()
            self.detach(client)

    @property
    def client_count(self) -> int:
        return len(self._streams)

    # -- events ---------------------------------------------------------------
    def closed(self, kline: EventKline, delivery: Delivery | None = None, *, live: bool = True) -> bool:
        """A stored close (from the layer or the database); sent once per stream, never an older one.

        ``True`` if it was new here (sent to the stream's subscribers, if any and if ``live``).
        """
        stream = stream_name(kline.symbol, kline.interval)
        open_ms = datetime_to_ms(kline.open_time)
        if open_ms <= self._newest_closed.get(stream, -1):
            return False
        self._newest_closed[stream] = open_ms
        if live and stream in self._subscribers:
            event = kline_event(kline, closed=True, event_ms=datetime_to_ms(kline.close_time) + 1)
            self._fan_out(stream, encode(event), delivery)
            self.closes_sent += 1
        return True

    def updates(self, events: Iterable[tuple[str, int, str]], delivery: Delivery | None = None) -> None:
        """In-progress updates as the ingest received them; one already closed is stale and skipped."""
        for stream, open_ms, text in events:
            if stream in self._subscribers and open_ms > self._newest_closed.get(stream, -1):
                self._fan_out(stream, text, delivery)
                self.updates_sent += 1

    def _fan_out(self, stream: str, text: str, delivery: Delivery | None) -> None:
        combined: str | None = None
        for client in list(self._subscribers[stream]):
            if client.combined:
                if combined is None:
                    combined = combined_frame(stream, text)
                client.queue.put(combined, delivery)
            else:
                client.queue.put(text, delivery)
