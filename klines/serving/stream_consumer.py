"""Binance-protocol kline streams: ``/market/ws/...``, ``/market/stream?streams=...``, legacy ``/ws``, ``/stream``.

Streams named in the URL are checked at the handshake: one that is not recorded
here, or more than :data:`~klines.api.stream_protocol.MAX_STREAMS`, refuses the
connection (HTTP 400 under daphne, with the reason). Once open, a client may
``SUBSCRIBE``, ``UNSUBSCRIBE``, ``LIST_SUBSCRIPTIONS``, ``SET_PROPERTY`` and
``GET_PROPERTY`` (``combined``) as on Binance; an invalid request gets
Binance's error reply and the connection stays open. Events come from the
process's :class:`~klines.serving.streams.StreamHub`; replies and events go out
in order through the connection's :class:`~klines.serving.stream_outbox.FrameQueue`.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from klines.api.recorded import recorded, refresh_recorded
from klines.api.stream_protocol import (
    MAX_STREAMS,
    ProtocolError,
    Request,
    parse_path,
    parse_request,
    parse_stream_name,
    result_reply,
)
from klines.serving.backpressure import pending_bytes
from klines.serving.feed import get_feed
from klines.serving.lean import LeanConsumer
from klines.serving.limits import InputLimits
from klines.serving.metrics import CLIENTS_CLOSED
from klines.serving.stream_outbox import FrameQueue

logger = logging.getLogger(__name__)

CLOSE_BAD_STREAM = 4400  # before accept: daphne answers HTTP 400 with the reason
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_TOO_SLOW = 4008
# A SUBSCRIBE naming 1024 streams is about 30 KB; nothing a client means to send is bigger.
MAX_MESSAGE_BYTES = 65536


class KlineStreamConsumer(LeanConsumer):
    combined = False
    queue: FrameQueue | None = None
    _closing = False

    async def connect(self) -> None:
        route = parse_path(self.scope["path"], self.scope.get("query_string", b"").decode("latin-1"))
        if route is None:  # the router sends only stream paths here
            await self.close(code=CLOSE_BAD_STREAM, reason="not a stream path")
            return
        try:
            await refresh_recorded()
            streams = self._checked(list(route.streams))
        except ProtocolError as exc:
            logger.info("refusing a stream connection: %s", exc.msg)
            await self.close(code=CLOSE_BAD_STREAM, reason=exc.msg)
            return
        feed = get_feed()
        await self.accept()
        if feed.client_count >= feed.settings.ws_max_connections:
            logger.warning("refusing a client: %d connections is this process's limit", feed.client_count)
            await self.close(code=CLOSE_TRY_AGAIN_LATER, reason="server full, try again later")
            return
        self.combined = route.combined
        self.limits = InputLimits(MAX_MESSAGE_BYTES)
        self.queue = FrameQueue(
            self._send_text,
            max_owed=feed.settings.ws_max_pending_bytes,
            too_slow=self._too_slow,
            buffered=lambda: pending_bytes(self.base_send),
        )
        feed.attach_stream(self, streams)
        self.queue.start()

    def _checked(self, names: list[Any], held: list[str] = ()) -> list[str]:
        """The canonical names of ``names`` (all recorded here), without repeats; ``ProtocolError`` otherwise."""
        symbols, intervals = recorded()
        streams = list(dict.fromkeys(str(parse_stream_name(n, symbols=symbols, intervals=intervals)) for n in names))
        if len(set(held) | set(streams)) > MAX_STREAMS:
            raise ProtocolError(2, f"Invalid request: too many streams; at most {MAX_STREAMS} per connection")
        return streams

    async def _send_text(self, frame: str) -> None:
        await self.send(text_data=frame)

    async def _too_slow(self, unsent: int) -> None:
        logger.warning("closing a stream client that stopped reading (%d bytes unsent)", unsent)
        get_feed().detach_stream(self)
        self._closing = True
        with contextlib.suppress(Exception):
            await self.close(code=CLOSE_TOO_SLOW)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self._closing or self.queue is None:
            return
        broken = self.limits.check(text_data, bytes_data)
        if broken is not None:
            code, reason = broken
            logger.info("closing a stream client (%s)", reason)
            CLIENTS_CLOSED.labels("abusive").inc()
            get_feed().detach_stream(self)
            self._closing = True
            await self.close(code=code, reason=reason)
            return
        if text_data is None:
            self.queue.put(ProtocolError(3, "Invalid JSON: binary frames are not requests").reply())
            return
        try:
            request = parse_request(text_data)
            await refresh_recorded()
            self.queue.put(result_reply(self._answer(request), request.id))
        except ProtocolError as exc:
            self.queue.put(exc.reply())

    def _answer(self, request: Request) -> Any:
        """The ``result`` of a valid request (its effect applied); ``ProtocolError`` for Binance's error replies."""
        feed = get_feed()
        method, params = request.method, request.params
        try:
            if method == "SUBSCRIBE":
                feed.hub.subscribe(self, self._checked(list(params), feed.hub.streams_of(self)))
                return None
            if method == "UNSUBSCRIBE":
                if not all(isinstance(p, str) for p in params):
                    raise ProtocolError(2, "Invalid request: stream names must be strings")
                feed.hub.unsubscribe(self, [p.lower() for p in params])
                return None
            if method == "LIST_SUBSCRIPTIONS":
                return feed.hub.streams_of(self)
            return self._property(method, params)
        except ProtocolError as exc:
            exc.request_id = request.id
            raise

    def _property(self, method: str, params: tuple[Any, ...]) -> Any:
        if not params or not isinstance(params[0], str):
            raise ProtocolError(2, "Invalid request: property name must be a string")
        if params[0] != "combined":
            raise ProtocolError(0, "Unknown property")
        if method == "GET_PROPERTY":
            if len(params) > 1:
                raise ProtocolError(2, "Invalid request: too many parameters")
            return self.combined
        if len(params) != 2:
            raise ProtocolError(2, "Invalid request: too many parameters" if len(params) > 2 else "Invalid request")
        if not isinstance(params[1], bool):
            raise ProtocolError(1, "Invalid value type: expected Boolean")
        self.combined = params[1]
        return None

    async def disconnect(self, code: int) -> None:
        get_feed().detach_stream(self)
        self.queue = None  # it holds our bound methods: a cycle only the garbage collector would free
