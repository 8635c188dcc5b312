"""Pure: which pages are closed (no kline can ever be added), If-None-Match, and the LRU of closed pages."""

from __future__ import annotations

import pytest

from klines.api.page_cache import Page, PageCache, closed, encode, etag_of, if_none_match

M = 60_000


def opens(*minutes: int) -> list[int]:
    return [m * M for m in minutes]


@pytest.mark.parametrize(
    ("open_minutes", "start", "end", "limit", "expected"),
    [
        ((10, 11, 12), 10, None, 3, True),  # full from startTime
        ((10, 11, 12), 9, None, 3, False),  # minute 9 may be backfilled
        ((10, 12, 13), 10, None, 3, False),  # a hole inside
        ((10, 11), 10, None, 3, False),  # reaches the newest kline: the record grows
        ((10, 11), 10, 11, 3, True),  # short, but every minute up to endTime is there
        ((10, 11), 10, 12, 3, False),  # minute 12 may still come
        ((10, 11, 12), None, 12, 3, True),  # the newest 3 up to endTime
        ((10, 11, 12), None, 13, 3, False),  # minute 13 may still come
        ((10, 11), None, 11, 3, False),  # the record's start: earlier minutes may be backfilled
        ((10, 11, 12), None, None, 3, False),  # the newest page
        ((), 10, 20, 3, False),
    ],
)
def test_closed(open_minutes: tuple[int, ...], start: int | None, end: int | None, limit: int, expected: bool) -> None:
    start_ms = None if start is None else start * M
    end_ms = None if end is None else end * M + 59_999
    assert closed(opens(*open_minutes), M, start_ms=start_ms, end_ms=end_ms, limit=limit) is expected


def test_a_start_inside_the_minute_before_the_first_row_leaves_no_room() -> None:
    assert closed(opens(10, 11), M, start_ms=9 * M + 1, end_ms=None, limit=2)
    assert not closed(opens(10, 11), M, start_ms=9 * M, end_ms=None, limit=2)


def test_if_none_match_compares_weakly_and_accepts_lists_and_star() -> None:
    tag = etag_of(b"[]")
    assert if_none_match(tag, tag)
    assert if_none_match(f'"other", W/{tag}', tag)
    assert if_none_match("*", tag)
    assert not if_none_match('"other"', tag)
    assert not if_none_match(None, tag)


def test_the_etag_follows_the_bytes() -> None:
    assert etag_of(encode([[1, "2"]])) == etag_of(b'[[1,"2"]]') != etag_of(b'[[1,"3"]]')


def test_the_cache_keeps_closed_pages_only_and_drops_the_least_recently_used() -> None:
    cache = PageCache(max_bytes=10)
    page = Page(b"abcd", etag_of(b"abcd"), closed=True)
    cache.put(("A", "1m", 0, None, 1), page)
    cache.put(("B", "1m", 0, None, 1), page)
    cache.put(("open", "1m", 0, None, 1), Page(b"ab", etag_of(b"ab"), closed=False))
    assert cache.get(("open", "1m", 0, None, 1)) is None
    assert cache.get(("A", "1m", 0, None, 1)) is page  # A is now the most recently used
    cache.put(("C", "1m", 0, None, 1), page)  # 12 bytes > 10: B goes
    assert cache.get(("B", "1m", 0, None, 1)) is None
    assert (len(cache), cache.size) == (2, 8)
    cache.put(("huge", "1m", 0, None, 1), Page(b"x" * 11, etag_of(b"x" * 11), closed=True))
    assert len(cache) == 2
