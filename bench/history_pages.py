"""The history benchmark's page choosers, and its lean HTTP client.

:class:`Pages` picks a random symbol and a random ``startTime`` that leaves a
full page behind it: nearly every page is new, so it measures a read of the
store each time. :class:`PagedPages` picks among the pages that clients
backfilling the same symbols ask for: python-binance's
``get_historical_klines`` and ccxt's paging start at a date and step by the
page, so pages repeat across clients, and pages wholly in the past are what
the service keeps encoded (``klines/api/pages.py``). :class:`Client` is one keep-alive
connection over ``asyncio.open_connection``: ``GET`` with a ``Content-Length`` answer
(Django's CommonMiddleware sets it), reconnecting when the server closes; the body is
read, not parsed, so the client stays cheap next to the server.
"""

from __future__ import annotations

import asyncio
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


class HttpError(Exception):
    """A non-200 answer or a malformed one."""


class Client:
    def __init__(self, port: int, *, timeout: float) -> None:
        self.port, self.timeout = port, timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, target: str, within: float | None = None) -> bytes:
        """The body of ``GET target``; raises :class:`HttpError` unless the status is 200."""
        try:
            return await asyncio.wait_for(self._get(target), within or self.timeout)
        except TimeoutError:
            await self.close()  # the answer may still come: this connection is spent
            raise

    async def _get(self, target: str) -> bytes:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self._reader is not None
        request = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"
        self._writer.write(request.encode())
        try:
            head = await self._reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            await self.close()
            raise
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        if "content-length" not in headers:
            await self.close()
            raise HttpError(f"no Content-Length in the answer: {lines[0]}")
        body = await self._reader.readexactly(int(headers["content-length"]))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        if status != 200:
            raise HttpError(f"{lines[0]}: {body[:200]!r}")
        return body

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None
