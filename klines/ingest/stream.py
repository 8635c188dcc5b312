"""The websocket-client loop: connect, read, reconnect with backoff, watchdog.

Transport only: every text frame goes to ``on_message``; parsing and storage
live elsewhere. The server's pings are answered (websocket-client does it inside
``recv_data``) through :class:`PoliteWebSocket`, which never sends more than
Binance's limit of incoming messages per second on one connection. The client
sends nothing else: the streams are named in the URL, not subscribed to.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import websocket

from klines.backoff import Backoff
from klines.binance.parse import stream_name

logger = logging.getLogger(__name__)

# Binance allows 300 connection attempts per 5 minutes per IP: one a second on average, 300 at once.
CONNECT_ATTEMPTS_PER_SECOND = 1.0
CONNECT_ATTEMPTS_BURST = 300.0
READ_TICK_SECONDS = 0.25  # how often a blocked read checks for stop and silence
CONNECT_TIMEOUT_SECONDS = 10.0
# Binance disconnects a connection that sends more than 10 messages a second
# (pings, pongs and JSON messages all count); stay well under it.
MAX_SENT_PER_SECOND = 5.0
# Binance refuses a stream URL over about 8,000 characters (8,004 measured); 1,024 streams
# would take ~20,000. A connection's stream list stays under this, leaving room for the base URL.
MAX_STREAM_LIST_CHARS = 7_500


class TokenBucket:
    """Allow at most ``rate`` events a second on average, ``burst`` at once."""

    def __init__(self, *, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._tokens = burst
        self._at = clock()

    def allow(self) -> bool:
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


@dataclass
class StreamStats:
    """What one connection's reader counted across its reconnects."""

    pongs_skipped: int = 0  # pings left unanswered to stay under Binance's message-rate limit


class PoliteWebSocket(websocket.WebSocket):
    """A websocket-client socket whose automatic pongs respect Binance's message-rate limit.

    A pong only proves the link is alive, so skipping one when a server floods
    pings loses nothing; exceeding the limit would get the connection dropped.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent_budget = TokenBucket(rate=MAX_SENT_PER_SECOND, burst=MAX_SENT_PER_SECOND)
        self.stats = StreamStats()

    def pong(self, payload: str | bytes = "") -> None:
        if self.sent_budget.allow():
            super().pong(payload)
        else:
            self.stats.pongs_skipped += 1


class StreamClosed(Exception):
    """The link ended (closed, dropped or silent); the loop reconnects."""


def split_streams(
    streams: Sequence[tuple[str, str]],
    per_connection: int,
    *,
    max_chars: int = MAX_STREAM_LIST_CHARS,
    name: Callable[[str, str], str] = stream_name,
) -> list[tuple[tuple[str, str], ...]]:
    """Cut ``(symbol, interval)`` streams into consecutive groups, one per connection: at most
    ``per_connection`` streams, whose ``/``-joined names (``name``) take at most ``max_chars`` (one alone may take
    more)."""
    if per_connection < 1:
        raise ValueError("per_connection must be at least 1")
    groups: list[tuple[tuple[str, str], ...]] = []
    group: list[tuple[str, str]] = []
    chars = 0
    for stream in streams:
        width = len(name(*stream)) + (1 if group else 0)
        if group and (len(group) == per_connection or chars + width > max_chars):
            groups.append(tuple(group))
            group, chars, width = [], 0, width - 1
        group.append(stream)
        chars += width
    if group:
        groups.append(tuple(group))
    return groups


def run_stream(
    url: str,
    *,
    on_message: Callable[[str], None],
    stop: threading.Event,
    on_connect: Callable[[], None] = lambda: None,
    silence_seconds: float = 30.0,
    healthy_seconds: float = 60.0,
    backoff: Backoff,
    name: str = "stream",
    stats: StreamStats | None = None,
    connect_budget: TokenBucket | None = None,
) -> None:
    """Read ``url`` until ``stop`` is set, reconnecting on any loss.

    ``on_connect`` runs after each successful connect (e.g. to backfill what the
    gap may have missed). The backoff resets once a link has stayed up for
    ``healthy_seconds``. An exception from ``on_message`` is logged and the
    frame skipped: the loop never dies on one bad frame. ``stats`` gathers the
    counts of every link it opens. ``connect_budget``, shared by all connections, keeps
    connection attempts under Binance's limit per IP.
    """
    attempt = 0
    while not stop.is_set():
        connected_at = None
        while connect_budget is not None and not connect_budget.allow():
            if stop.wait(1.0 / connect_budget.rate):
                return
        try:
            # Frames are decoded below with bytes.decode(), which checks UTF-8 in C;
            # websocket-client's own check is pure Python and slow.
            ws = websocket.create_connection(
                url,
                timeout=CONNECT_TIMEOUT_SECONDS,
                enable_multithread=True,
                skip_utf8_validation=True,
                class_=PoliteWebSocket,
            )
        except (OSError, websocket.WebSocketException) as exc:
            logger.warning("%s: connect failed: %s", name, exc)
        else:
            if stats is not None:
                ws.stats = stats
            connected_at = time.monotonic()
            logger.info("%s: connected", name)
            try:
                on_connect()
                _read_until_lost(ws, on_message=on_message, stop=stop, silence_seconds=silence_seconds)
            except StreamClosed as exc:
                if not stop.is_set():  # on a clean shutdown the link ends on purpose
                    logger.warning("%s: stream lost: %s; reconnecting", name, exc)
            finally:
                _close_quietly(ws)
        if stop.is_set():
            break
        if connected_at is not None and time.monotonic() - connected_at >= healthy_seconds:
            attempt = 0
        delay = backoff.delay(attempt)
        attempt += 1
        logger.info("%s: reconnecting in %.1fs", name, delay)
        stop.wait(delay)


def _close_quietly(ws: websocket.WebSocket) -> None:
    """Close the link, and always the socket: after a server's close frame, ``close()`` alone returns early
    (websocket-client marks the link closed when it answers the close frame) and leaves the socket open."""
    with contextlib.suppress(OSError, websocket.WebSocketException):
        ws.close(timeout=1)
    ws.shutdown()


def _read_until_lost(
    ws: websocket.WebSocket, *, on_message: Callable[[str], None], stop: threading.Event, silence_seconds: float
) -> None:
    ws.settimeout(READ_TICK_SECONDS)
    last_message = time.monotonic()
    while not stop.is_set():
        try:
            opcode, data = ws.recv_data(control_frame=False)
        except websocket.WebSocketTimeoutException:
            if time.monotonic() - last_message > silence_seconds:
                raise StreamClosed(f"no message for {silence_seconds:g}s (watchdog)") from None
            continue
        except websocket.WebSocketConnectionClosedException as exc:
            raise StreamClosed(f"connection closed ({exc})") from None
        except (OSError, websocket.WebSocketException) as exc:
            raise StreamClosed(f"{type(exc).__name__}: {exc}") from None
        last_message = time.monotonic()
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            raise StreamClosed("server sent a close frame")
        if opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
            text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
            try:
                on_message(text)
            except Exception:  # a bug in one frame's handling must not end the stream
                logger.exception("message handler failed; frame skipped: %.200s", text)
