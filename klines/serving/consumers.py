"""Websocket consumers: the kline feed on ``/`` (optionally a selection) and a polite refusal elsewhere."""

from __future__ import annotations

import contextlib
import functools
import logging
from urllib.parse import unquote

from channels.generic.websocket import AsyncWebsocketConsumer

from klines.api.recorded import recorded, refresh_recorded
from klines.serving.backpressure import pending_bytes
from klines.serving.feed import get_feed
from klines.serving.immediate import immediate_send
from klines.serving.lean import LeanConsumer
from klines.serving.limits import InputLimits
from klines.serving.metrics import CLIENTS_CLOSED
from klines.serving.selection import Selection, SelectionError, parse_selection

logger = logging.getLogger(__name__)

CLOSE_TRY_AGAIN_LATER = 1013  # RFC 6455 "try again later": the process has WS_MAX_CONNECTIONS clients
CLOSE_TOO_SLOW = 4008  # the client stopped reading; its unsent frames passed WS_MAX_PENDING_BYTES
CLOSE_UNKNOWN_PATH = 4404
CLOSE_BAD_SELECTION = 4400  # before accept: daphne answers HTTP 400 with the reason (binancews.daphne_patches.close)
MAX_MESSAGE_BYTES = 4096  # the feed ignores input; nothing a client could mean to send is bigger


class KlineFeedConsumer(LeanConsumer):
    """Send the five payloads on connect, then every update; ignore what clients send.

    It is lean (:class:`~klines.serving.lean.LeanConsumer`): the connect path is the service's hot path.

    Frames go out through the connection's outbox (:mod:`klines.serving.outbox`).
    Input is ignored but bounded: a message over :data:`MAX_MESSAGE_BYTES`, or more
    than :data:`~klines.serving.limits.MAX_MESSAGES_PER_SECOND` messages in a second, closes the connection.
    """

    _closing = False
    _limits: InputLimits | None = None

    async def connect(self) -> None:
        feed = get_feed()
        selection = None
        query = self.scope.get("query_string", b"").decode("latin-1")
        if query:  # a selection: refused before the handshake completes, with the reason
            try:
                await refresh_recorded()
                selection = self._selection(query)
                await feed.prepare(selection)
            except SelectionError as exc:
                logger.info("refusing a selection on / (%s): %s", exc, unquote(query)[:200])
                await self.close(code=CLOSE_BAD_SELECTION, reason=str(exc))
                return
            except Exception as exc:  # the database is down and this selection was never read
                logger.warning("could not read a selection on / (%s)", exc)
                await self.close(code=CLOSE_TRY_AGAIN_LATER, reason="selection unavailable, try again later")
                return
        await self.accept()
        if feed.client_count >= feed.settings.ws_max_connections:
            logger.warning("refusing a client: %d connections is this process's limit", feed.client_count)
            await self.close(code=CLOSE_TRY_AGAIN_LATER, reason="server full, try again later")
            return
        send_now = immediate_send(self.base_send)
        feed.attach(
            self,
            self._send_text,
            too_slow=self._too_slow,
            buffered=lambda: pending_bytes(self.base_send),
            send_now=None if send_now is None else functools.partial(send_now, self.base_send),
            selection=selection,
        )

    def _selection(self, query: str) -> Selection:
        symbols, intervals = recorded()
        return parse_selection(query, default=get_feed().default_selection, symbols=symbols, intervals=intervals)

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
        if self._limits is None:
            self._limits = InputLimits(MAX_MESSAGE_BYTES)
        broken = self._limits.check(text_data, bytes_data)
        if broken is not None:
            await self._refuse(*broken)

    async def _refuse(self, code: int, reason: str) -> None:
        logger.info("closing a client (%s): %s", reason, self.scope.get("client"))
        get_feed().detach(self)
        self._closing = True
        CLIENTS_CLOSED.labels("abusive").inc()
        await self.close(code=code, reason=reason)

    async def disconnect(self, code: int) -> None:
        get_feed().detach(self)


class UnknownPathConsumer(AsyncWebsocketConsumer):
    """Reject the handshake for any path other than ``/`` (HTTP 403, no traceback)."""

    async def connect(self) -> None:
        await self.close(code=CLOSE_UNKNOWN_PATH)
