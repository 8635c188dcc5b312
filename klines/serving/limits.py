"""Client limits shared by the websocket consumers: message size and message rate."""

from __future__ import annotations

import time

CLOSE_TOO_BIG = 1009  # RFC 6455 "message too big"
CLOSE_POLICY = 1008  # RFC 6455 "policy violation": too many messages
MAX_MESSAGES_PER_SECOND = 10  # as on Binance: more closes the connection


class InputLimits:
    """Count one connection's incoming messages; say when one breaks a limit (a close code and reason)."""

    def __init__(self, max_bytes: int, per_second: int = MAX_MESSAGES_PER_SECOND) -> None:
        self.max_bytes = max_bytes
        self.per_second = per_second
        self._window_start = 0.0
        self._window_count = 0

    def check(self, text_data: str | None, bytes_data: bytes | None) -> tuple[int, str] | None:
        size = len(bytes_data) if bytes_data is not None else len((text_data or "").encode())
        if size > self.max_bytes:
            return CLOSE_TOO_BIG, f"messages are limited to {self.max_bytes} bytes"
        now = time.monotonic()
        if now - self._window_start >= 1.0:
            self._window_start, self._window_count = now, 0
        self._window_count += 1
        if self._window_count > self.per_second:
            return CLOSE_POLICY, f"more than {self.per_second} messages a second"
        return None
