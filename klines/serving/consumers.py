"""Websocket consumers: the kline feed on ``/`` and a polite refusal elsewhere."""

from __future__ import annotations

import logging
from typing import Any

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer

from klines.serving.backpressure import pending_bytes
from klines.serving.feed import get_feed

logger = logging.getLogger(__name__)

CLOSE_TOO_SLOW = 4008  # the client stopped reading; its unsent frames passed WS_MAX_PENDING_BYTES
CLOSE_UNKNOWN_PATH = 4404


class KlineFeedConsumer(AsyncWebsocketConsumer):
    """Send the five payloads on connect, then every update; ignore what clients send.

    The connect path is the service's hot path, so the consumer skips two things
    channels does for every connection that it has no use for (measurements in
    bench/README.md): a channel-layer channel and its receive task per
    connection, and ``close_old_connections()`` in the one thread-sensitive
    worker thread around every event and after every disconnect (this consumer
    never touches the database, and that thread may be busy with a slow query).
    """

    # Frames come from the process-wide feed, which holds the process's one
    # channel-layer channel; a connection needs no layer channel of its own
    # (no alias is configured under this name, so channels gives it none).
    channel_layer_alias = None

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
        """Send one frame; close this connection if it has stopped reading."""
        await self.send(text_data=frame)
        pending = pending_bytes(self.base_send)
        if pending is not None and pending > get_feed().settings.ws_max_pending_bytes:
            logger.warning("closing a client that stopped reading (%d bytes unsent) %s", pending, self.scope["client"])
            get_feed().detach(self)
            await self.close(code=CLOSE_TOO_SLOW)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Clients have nothing to say to a market-data feed; their messages are ignored."""

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        """As channels does it, minus the groups (there are none) and ``aclose_old_connections()``."""
        await self.disconnect(message["code"])
        raise StopConsumer()

    async def disconnect(self, code: int) -> None:
        get_feed().detach(self)


class UnknownPathConsumer(AsyncWebsocketConsumer):
    """Reject the handshake for any path other than ``/`` (HTTP 403, no traceback)."""

    async def connect(self) -> None:
        await self.close(code=CLOSE_UNKNOWN_PATH)
