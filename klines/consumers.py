"""Websocket consumers: the kline feed on ``/`` and a polite refusal elsewhere."""

from __future__ import annotations

from typing import Any

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer

from klines.feed import get_feed

CLOSE_UNKNOWN_PATH = 4404
# No channel layer per connection: the feed listens on the layer once per process.
# get_channel_layer() returns None for an alias that is not configured.
NO_CHANNEL_LAYER = "klines.feed-listens-once-per-process"


class KlineFeedConsumer(AsyncWebsocketConsumer):
    """Send the five payloads on connect, then every update; ignore what clients send.

    The connect path is the hot path of the service, so the consumer skips two
    things channels does for every connection that it has no use for (see
    bench/README.md for the measurements): a channel-layer channel and its
    receive task per connection, and ``close_old_connections()`` run in a worker
    thread around every event (this consumer never touches the database; the
    feed's own ``database_sync_to_async`` calls clean up after themselves).
    """

    channel_layer_alias = NO_CHANNEL_LAYER

    async def dispatch(self, message: dict[str, Any]) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"no handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        await self.accept()
        for frame in get_feed().attach(self, self.send_frame):
            await self.send_frame(frame)

    async def send_frame(self, frame: str) -> None:
        await self.send(text_data=frame)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Clients have nothing to say to a market-data feed; their messages are ignored."""

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        get_feed().detach(self)
        raise StopConsumer()


class UnknownPathConsumer(AsyncWebsocketConsumer):
    """Reject the handshake for any path other than ``/`` (HTTP 403, no traceback)."""

    async def connect(self) -> None:
        await self.close(code=CLOSE_UNKNOWN_PATH)
