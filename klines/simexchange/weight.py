"""The simulated exchange's request weight: what each REST call costs, per rolling minute, as Binance counts it.

Binance reports the weight an IP used in the last minute in ``X-MBX-USED-WEIGHT-1M`` and answers
429 with ``Retry-After`` to a request that would go over its limit (2,400 on USD-M futures).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping

from klines.binance.rest import kline_weight

WINDOW_SECONDS = 60.0
REST_DEFAULT_LIMIT = 500


def request_weight(path: str, query: Mapping[str, list[str]]) -> int:
    """The documented weight of a REST call (``/fapi/v1/klines`` by its ``limit``; the others here cost 1)."""
    if path == "/fapi/v1/klines":
        raw = query.get("limit", [str(REST_DEFAULT_LIMIT)])[0]
        return kline_weight(int(raw) if raw.isdigit() else REST_DEFAULT_LIMIT)
    return 1


class WeightCounter:
    """Weight spent in the last minute; over ``limit`` (``None``: no limit) a request is refused."""

    def __init__(self, limit: int | None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self._spent: deque[tuple[float, int]] = deque()
        self.most = 0  # the most weight used in any minute
        self.refused = 0  # requests answered 429

    def used(self) -> int:
        now = self.clock()
        while self._spent and self._spent[0][0] <= now - WINDOW_SECONDS:
            self._spent.popleft()
        return sum(w for _, w in self._spent)

    def spend(self, weight: int) -> tuple[int, float | None]:
        """Count a request: (the minute's weight used, ``None``), or (used, seconds to retry after) if refused."""
        used = self.used()
        if self.limit is not None and used + weight > self.limit:
            self.refused += 1
            retry = self._spent[0][0] + WINDOW_SECONDS - self.clock() if self._spent else WINDOW_SECONDS
            return used, max(1.0, retry)
        self._spent.append((self.clock(), weight))
        self.most = max(self.most, used + weight)
        return used + weight, None
