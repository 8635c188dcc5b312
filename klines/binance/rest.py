"""A small httpx client for Binance's public REST API that keeps to its rate limits.

Binance limits each IP by request *weight* per minute (2400 on USD-M futures,
reported back in ``X-MBX-USED-WEIGHT-1M``), answers 429 with ``Retry-After``
when a client goes over, and 418 (a temporary IP ban) when it keeps going.
:class:`WeightPacer` keeps our own spend under a budget, waits out any
``Retry-After`` before the next request, and pauses when the server reports
the budget used.

Every transport failure (a reset, a timeout, a truncated body, a garbled status
line, TLS) and every answer that is not JSON becomes :class:`RestError`, which
the caller retries. One pooled keep-alive connection serves all requests.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from klines.backoff import Backoff

logger = logging.getLogger(__name__)

WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
RATE_LIMITED = (429, 418)
MAX_RATE_LIMITED_RETRIES = 5
USER_AGENT = "binancews-backfill/1"
RATE_LIMIT_BACKOFF = Backoff(initial=1.0, maximum=60.0)  # a 429/418 without Retry-After


def kline_weight(limit: int) -> int:
    """Request weight of ``GET /fapi/v1/klines`` with ``limit`` (Binance's documented table)."""
    if limit < 100:
        return 1
    if limit < 500:
        return 2
    if limit <= 1000:
        return 5
    return 10


class RestError(Exception):
    """A REST call failed; the caller tries again later."""


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); ``None`` if absent or bad."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


class WeightPacer:
    """Spend at most ``budget`` request weight in any 60 s, and honour blocks (Retry-After)."""

    WINDOW = 60.0

    def __init__(self, budget: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.budget = budget
        self.clock = clock
        self._spent: deque[tuple[float, int]] = deque()
        self._blocked_until = float("-inf")
        self.total_spent = 0  # weight spent since start (a counter for metrics)

    def delay(self, weight: int, *, share: float = 1.0) -> float:
        """Seconds to wait before a request of ``weight`` may be sent, keeping the minute's spend within
        ``share`` of the budget (a request heavier than that share goes when the window is empty)."""
        now = self.clock()
        while self._spent and self._spent[0][0] <= now - self.WINDOW:
            self._spent.popleft()
        wait = max(0.0, self._blocked_until - now)
        used = sum(w for _, w in self._spent)
        budget = self.budget * share
        if used + weight > budget and self._spent:
            # Wait until enough of the oldest spend leaves the window.
            excess = used + weight - budget
            for at, spent in self._spent:
                excess -= spent
                if excess <= 0:
                    wait = max(wait, at + self.WINDOW - now)
                    break
        return wait

    def spend(self, weight: int) -> None:
        self._spent.append((self.clock(), weight))
        self.total_spent += weight

    def block(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (a Retry-After, or the server's own count at the budget)."""
        self._blocked_until = max(self._blocked_until, self.clock() + seconds)

    def observe_used(self, used: int) -> None:
        """The server's count of weight used this minute; at the budget, pause for the rest of the minute."""
        if used >= self.budget:
            self.block(self.WINDOW - time.time() % self.WINDOW)


class BinanceRest:
    """GET JSON from Binance's REST API, paced and rate-limit aware."""

    def __init__(
        self,
        base_url: str,
        *,
        weight_per_minute: int,
        stop: threading.Event,
        timeout: float = 10.0,
        backoff: Backoff = RATE_LIMIT_BACKOFF,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.pacer = WeightPacer(weight_per_minute)
        self.stop = stop
        self.timeout = timeout
        self.backoff = backoff
        self._turn = threading.Lock()
        self.requests = 0
        self.rate_limited = 0  # 429/418 answers waited out
        self._client = httpx.Client(timeout=timeout, headers={"User-Agent": USER_AGENT})
        self.clock_offset_ms = 0  # exchange clock minus ours, from the last server-time call

    def server_time_ms(self) -> int:
        """The exchange's clock (``GET /fapi/v1/time``, weight 1); also updates :attr:`clock_offset_ms`."""
        sent = time.time() * 1000
        body = self.get("/fapi/v1/time", {}, weight=1)
        if not isinstance(body, dict) or not isinstance(body.get("serverTime"), int):
            raise RestError(f"unexpected /fapi/v1/time answer: {str(body)[:200]}")
        self.clock_offset_ms = round(body["serverTime"] - (sent + time.time() * 1000) / 2)
        return body["serverTime"]

    def exchange_now_ms(self) -> int:
        return round(time.time() * 1000) + self.clock_offset_ms

    def get(self, path: str, params: Mapping[str, Any], *, weight: int, share: float = 1.0) -> Any:
        """The JSON body of ``GET path``; :class:`RestError` for anything else (the caller retries later).

        Thread-safe: callers (one backfill thread per interval) take turns, so the pacing holds for all.
        With ``share`` below 1, the request also waits, without holding up the others' turns, until the
        minute's spend leaves room for it within that share of the budget: background work (the first
        start's history) leaves the rest to the backfill and the hole repair.
        """
        if share < 1.0:
            self._wait_for_share(weight, share)
        with self._turn:
            return self._get(path, params, weight=weight)

    def _wait_for_share(self, weight: int, share: float) -> None:
        while True:
            with self._turn:  # the pacer's record is only read and written in a turn
                wait = self.pacer.delay(weight, share=share)
            if wait <= 0:
                return
            if self.stop.wait(wait):
                raise RestError("stopped")

    def _get(self, path: str, params: Mapping[str, Any], *, weight: int) -> Any:
        for attempt in range(MAX_RATE_LIMITED_RETRIES + 1):
            wait = self.pacer.delay(weight)
            if wait > 0 and self.stop.wait(wait):
                raise RestError("stopped")
            self.pacer.spend(weight)
            self.requests += 1
            try:
                response = self._client.get(f"{self.base_url}{path}", params=dict(params))
            except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
                raise RestError(f"{path}: {type(exc).__name__}: {exc or 'no detail'}") from None
            self._observe(response.headers)
            if response.status_code in RATE_LIMITED:
                self._rate_limited(response, attempt)
                continue
            if response.status_code != 200:
                raise RestError(f"HTTP {response.status_code} from {path}: {response.content[:200]!r}")
            try:
                return json.loads(response.content)
            except ValueError:
                raise RestError(f"{path}: the answer is not JSON: {response.content[:200]!r}") from None
        raise RestError(f"{path}: still rate limited after {MAX_RATE_LIMITED_RETRIES} waits")

    def close(self) -> None:
        self._client.close()

    def _rate_limited(self, response: httpx.Response, attempt: int) -> None:
        self.rate_limited += 1
        seconds = retry_after_seconds(response.headers.get("Retry-After"))
        if seconds is None:
            seconds = self.backoff.delay(attempt)
        self.pacer.block(seconds)
        what = "IP banned (418)" if response.status_code == 418 else "rate limited (429)"
        logger.warning("Binance REST %s: waiting %.1fs before the next request (Retry-After)", what, seconds)

    def _observe(self, headers: httpx.Headers) -> None:
        used = headers.get(WEIGHT_HEADER)
        if used is not None and used.isdigit():
            self.pacer.observe_used(int(used))
