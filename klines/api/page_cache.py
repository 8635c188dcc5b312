"""Pure: a ``/fapi/v1/klines`` page as bytes with its ETag, whether it can ever change, and a bounded LRU of them.

A page is *closed* when no kline can ever be added inside it: its rows are
contiguous, nothing is missing between the asked-for start (or end) and its
first (or last) row, and it is full (``limit`` rows) or reaches an explicit
``endTime``. A stored kline is closed and never rewritten, so such a page is
the same bytes for good; a page with a hole (which a backfill may fill), the
newest page, or one that runs into the start of the record is not, and is
answered fresh each time (its ETag still lets a client revalidate).
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

CLOSED_CACHE_CONTROL = "public, max-age=31536000, immutable"  # the bytes can never change
OPEN_CACHE_CONTROL = "no-cache"  # may change: revalidate with If-None-Match


@dataclass(frozen=True)
class Page:
    body: bytes
    etag: str
    closed: bool

    @property
    def cache_control(self) -> str:
        return CLOSED_CACHE_CONTROL if self.closed else OPEN_CACHE_CONTROL


PageKey = tuple[str, str, int | None, int | None, int]  # symbol, interval, startTime, endTime, limit


def encode(rows: Iterable[list[Any]]) -> bytes:
    """The JSON body, as :func:`klines.api.views.json_response` writes it."""
    return json.dumps(list(rows), separators=(",", ":")).encode()


def etag_of(body: bytes) -> str:
    """A strong ETag derived from the bytes alone: equal bodies, equal tags."""
    return f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'


def closed(open_ms: Sequence[int], step_ms: int, *, start_ms: int | None, end_ms: int | None, limit: int) -> bool:
    """Whether a page of these open times (oldest first), asked with these bounds, can never gain a kline.

    ``end_ms`` is the ``endTime`` the client gave (``None``: up to now, so the page may grow).
    """
    if not open_ms or any(b - a != step_ms for a, b in zip(open_ms, open_ms[1:], strict=False)):
        return False
    if start_ms is not None:
        if open_ms[0] - start_ms >= step_ms:  # a slot before the first row may still be filled
            return False
        return len(open_ms) == limit or (end_ms is not None and end_ms - open_ms[-1] < step_ms)
    # The newest ``limit`` up to endTime: full, and nothing missing after the last row.
    return end_ms is not None and len(open_ms) == limit and end_ms - open_ms[-1] < step_ms


def if_none_match(header: str | None, etag: str) -> bool:
    """RFC 9110's weak comparison of ``If-None-Match`` with ``etag`` (``*`` matches any)."""
    if not header:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in tags or etag in tags


class PageCache:
    """Closed pages by their query, least recently used dropped first once their bodies exceed ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._pages: OrderedDict[PageKey, Page] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pages)

    def get(self, key: PageKey) -> Page | None:
        page = self._pages.get(key)
        if page is not None:
            self._pages.move_to_end(key)
        return page

    def put(self, key: PageKey, page: Page) -> None:
        if not page.closed or len(page.body) > self.max_bytes:
            return
        old = self._pages.pop(key, None)
        if old is not None:
            self.size -= len(old.body)
        self._pages[key] = page
        self.size += len(page.body)
        while self.size > self.max_bytes:
            _, dropped = self._pages.popitem(last=False)
            self.size -= len(dropped.body)

    def clear(self) -> None:
        self._pages.clear()
        self.size = 0
