"""Websocket consumers: the kline feed on ``/`` and a polite refusal elsewhere."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer

from klines.serving.backpressure import pending_bytes
from klines.serving.feed import get_feed

logger = logging.getLogger(__name__)

CLOSE_TOO_BIG = 1009  # RFC 6455 "message too big"
CLOSE_POLICY = 1008  # RFC 6455 "policy violation": too many messages
CLOSE_TRY_AGAIN_LATER = 1013  # RFC 6455 "try again later": the process has WS_MAX_CONNECTIONS clients
CLOSE_TOO_SLOW = 4008  # the client stopped reading; its unsent frames passed WS_MAX_PENDING_BYTES
CLOSE_UNKNOWN_PATH = 4404
MAX_MESSAGE_BYTES = 4096  # the feed ignores input; nothing a client could mean to send is bigger
MAX_MESSAGES_PER_SECOND = 10


class KlineFeedConsumer(AsyncWebsocketConsumer):
    """Send the five payloads on connect, then every update; ignore what clients send.

    The connect path is the service's hot path, so the consumer skips two things
    channels does for every connection that it has no use for (measurements in
    bench/README.md): a channel-layer channel and its receive task per
    connection, and ``close_old_connections()`` in the one thread-sensitive
    worker thread around every event and after every disconnect (this consumer
    never touches the database, and that thread may be busy with a slow query).

    Frames go out through the connection's outbox (:mod:`klines.serving.outbox`).
    Input is ignored but bounded: a message over :data:`MAX_MESSAGE_BYTES`, or more
    than :data:`MAX_MESSAGES_PER_SECOND` messages in a second, closes the connection.
    """

    # Frames come from the process-wide feed, which holds the process's one
    # channel-layer channel; a connection needs no layer channel of its own
    # (no alias is configured under this name, so channels gives it none).
    channel_layer_alias = None
    _window_start = 0.0
    _window_count = 0
    _closing = False

    async def dispatch(self, message: dict[str, Any]) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"no handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        feed = get_feed()
        await self.accept()
        if feed.client_count >= feed.settings.ws_max_connections:
            logger.warning("refusing a client: %d connections is this process's limit", feed.client_count)
            await self.close(code=CLOSE_TRY_AGAIN_LATER, reason="server full, try again later")
            return
        feed.attach(self, self._send_text, too_slow=self._too_slow, buffered=lambda: pending_bytes(self.base_send))

    async def _send_text(self, frame: str) -> None:
        await self.send(text_data=frame)

    async def _too_slow(self, unsent: int) -> None:
        logger.warning("closing a client that stopped reading (%d bytes unsent) %s", unsent, self.scope.get("client"))
        get_feed().detach(self)
        self._closing = True
        with contextlib.suppress(Exception):  # it went away meanwhile
            await self.close(code=CLOSE_TOO_SLOW)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Clients have nothing to say to a market-data feed; their messages are ignored, within limits."""
        if self._closing:
            return
        size = len(bytes_data) if bytes_data is not None else len((text_data or "").encode())
        if size > MAX_MESSAGE_BYTES:
            await self._refuse(CLOSE_TOO_BIG, f"messages are limited to {MAX_MESSAGE_BYTES} bytes")
            return
        now = time.monotonic()
        if now - self._window_start >= 1.0:
            self._window_start, self._window_count = now, 0
        self._window_count += 1
        if self._window_count > MAX_MESSAGES_PER_SECOND:
            await self._refuse(CLOSE_POLICY, f"more than {MAX_MESSAGES_PER_SECOND} messages a second")

    async def _refuse(self, code: int, reason: str) -> None:
        logger.info("closing a client (%s): %s", reason, self.scope.get("client"))
        get_feed().detach(self)
        self._closing = True
        await self.close(code=code, reason=reason)

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
