"""The history benchmark's page choosers: random pages anywhere in the record, or the pages a crowd pages through.

:class:`Pages` picks a random symbol and a random ``startTime`` that leaves a
full page behind it: nearly every page is new, so it measures a read of the
store each time. :class:`PagedPages` picks among the pages that clients
backfilling the same symbols ask for: python-binance's
``get_historical_klines`` and ccxt's paging start at a date and step by the
page, so pages repeat across clients, and pages wholly in the past are what
the service keeps encoded (``klines/api/pages.py``).
"""

from __future__ import annotations

import random

INTERVAL = "1m"
PAGE = 1500  # Binance's largest page
MINUTE_MS = 60_000
PAGED_SYMBOLS = 6  # symbols the crowd backfills: 6 × 33 pages of ~200 KB fit the service's 64 MiB of pages


def target(symbol: str, start_ms: int) -> str:
    return f"/fapi/v1/klines?symbol={symbol}&interval={INTERVAL}&startTime={start_ms}&limit={PAGE}"


class Pages:
    """Random full pages of the record: ``/fapi/v1/klines?symbol=..&interval=1m&startTime=..&limit=1500``."""

    def __init__(self, symbols: list[str], first_open_ms: int, minutes: int, seed: int = 13) -> None:
        self.symbols = symbols
        self.first_open_ms = first_open_ms
        self.starts = minutes - PAGE  # every start leaves a full page behind it
        self.rng = random.Random(seed)

    def __call__(self) -> str:
        symbol = self.rng.choice(self.symbols)
        return target(symbol, self.first_open_ms + self.rng.randrange(self.starts + 1) * MINUTE_MS)


class PagedPages:
    """The full pages from the record's start in steps of a page, of the first :data:`PAGED_SYMBOLS` symbols."""

    def __init__(self, symbols: list[str], first_open_ms: int, minutes: int, seed: int = 17) -> None:
        self.all = [
            target(symbol, first_open_ms + k * PAGE * MINUTE_MS)
            for symbol in symbols[:PAGED_SYMBOLS]
            for k in range(minutes // PAGE)
        ]
        self.rng = random.Random(seed)

    def __call__(self) -> str:
        return self.rng.choice(self.all)
