"""What the mirror can answer for: the recorded symbols (upper case) and intervals."""

from __future__ import annotations

from klines.serving.settings import serving_settings


def recorded() -> tuple[frozenset[str], frozenset[str]]:
    serving = serving_settings()
    return frozenset(s.upper() for s in serving.symbols), frozenset(serving.intervals)
