"""The websocket-client loop: connect, read, reconnect with backoff, watchdog.

Transport only: every text frame goes to ``on_message``; parsing and storage
live elsewhere. websocket-client answers the server's pings itself.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import websocket

logger = logging.getLogger(__name__)

READ_TICK_SECONDS = 0.25  # how often a blocked read checks for stop and silence


@dataclass(frozen=True, kw_only=True)
class Backoff:
    """Exponential backoff with full jitter, capped."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0

    def delay(self, attempt: int) -> float:
        ceiling = min(self.maximum, self.initial * self.factor**attempt)
        return random.uniform(ceiling / 2, ceiling)


class StreamClosed(Exception):
    """The link ended (closed, dropped or silent); the loop reconnects."""


def run_stream(
    url: str,
    *,
    on_message: Callable[[str], None],
    stop: threading.Event,
    on_connect: Callable[[], None] = lambda: None,
    silence_seconds: float = 30.0,
    healthy_seconds: float = 60.0,
    backoff: Backoff = Backoff(),
) -> None:
    """Read ``url`` until ``stop`` is set, reconnecting on any loss.

    ``on_connect`` runs after each successful connect (e.g. to backfill what the
    gap may have missed). The backoff resets once a link has stayed up for
    ``healthy_seconds``.
    """
    attempt = 0
    while not stop.is_set():
        connected_at = None
        try:
            # Frames are decoded below with bytes.decode(), which checks UTF-8 in C;
            # websocket-client's own check is pure Python and cost a third of the reader's time.
            ws = websocket.create_connection(url, timeout=10, enable_multithread=True, skip_utf8_validation=True)
        except (OSError, websocket.WebSocketException) as exc:
            logger.warning("connect to %s failed: %s", url, exc)
        else:
            connected_at = time.monotonic()
            logger.info("connected to %s", url)
            try:
                on_connect()
                _read_until_lost(ws, on_message=on_message, stop=stop, silence_seconds=silence_seconds)
            except StreamClosed as exc:
                logger.warning("stream lost: %s; reconnecting", exc)
            finally:
                ws.close(timeout=1)
        if stop.is_set():
            break
        if connected_at is not None and time.monotonic() - connected_at >= healthy_seconds:
            attempt = 0
        delay = backoff.delay(attempt)
        attempt += 1
        stop.wait(delay)


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
                raise StreamClosed(f"no message for {silence_seconds:.0f}s (watchdog)") from None
            continue
        except websocket.WebSocketConnectionClosedException as exc:
            raise StreamClosed(f"connection closed ({exc})") from None
        except (OSError, websocket.WebSocketException) as exc:
            raise StreamClosed(f"{type(exc).__name__}: {exc}") from None
        last_message = time.monotonic()
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            raise StreamClosed("server sent a close frame")
        if opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
            on_message(data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data)
