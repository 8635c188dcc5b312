"""Exponential backoff with jitter: the one retry policy the stream, REST, writer and backfill share."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Backoff:
    """Exponential backoff with jitter, capped: ``attempt`` 0, 1, 2... waits about 0.5, 1, 2... s."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0

    def delay(self, attempt: int) -> float:
        ceiling = min(self.maximum, self.initial * self.factor ** min(attempt, 64))
        return random.uniform(ceiling / 2, ceiling)
