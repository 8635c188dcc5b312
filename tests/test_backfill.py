"""Backfill planning (pure), the REST pacing, and the backfill against the fake exchange's REST."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest

from klines.binance.parse import ClosedKline, ms_to_datetime
from klines.binance.rest import BinanceRest, RestError, WeightPacer, retry_after_seconds
from klines.ingest.backfill import PAGE_LIMIT, Backfiller, Page, closed_before, first_page, kline_weight, next_page
from klines.ingest.backfill import starting_points as starts
from klines.window import HISTORY
from tests.fake_exchange import ExchangeThread, FaultyExchange
from tests.helpers import closed_kline

MINUTE = 60_000


def test_kline_weight_follows_binances_table() -> None:
    assert [kline_weight(n) for n in (1, 99, 100, 499, 500, 1000, 1001, 1500)] == [1, 1, 2, 2, 5, 5, 10, 10]
    assert kline_weight(PAGE_LIMIT) == 2  # the cheapest weight per kline


def test_an_empty_database_asks_for_the_newest_history_plus_the_open_kline() -> None:
    assert HISTORY == 11
    assert first_page(None, server_ms=100 * MINUTE, interval_ms=MINUTE) == Page(start_ms=None, limit=12)


def test_a_page_asks_only_for_klines_closed_by_the_exchange_clock() -> None:
    # Klines opening at 10..14 closed by 15:00.5; the one opening at 15 is still open.
    page = first_page(10 * MINUTE, server_ms=15 * MINUTE + 500, interval_ms=MINUTE)
    assert page == Page(start_ms=10 * MINUTE, limit=5)
    assert page.params("btcusdt", "1m") == {"symbol": "BTCUSDT", "interval": "1m", "limit": 5, "startTime": 600_000}


def test_nothing_is_asked_before_the_next_kline_closes() -> None:
    assert first_page(15 * MINUTE, server_ms=15 * MINUTE + 59_999, interval_ms=MINUTE) is None
    assert first_page(15 * MINUTE, server_ms=16 * MINUTE, interval_ms=MINUTE) == Page(start_ms=15 * MINUTE, limit=1)


def test_long_gaps_are_paged() -> None:
    server_ms = 2000 * MINUTE + 1
    page = first_page(0, server_ms=server_ms, interval_ms=MINUTE)
    pages = []
    while page is not None:
        pages.append(page)
        got = [_kline(page.start_ms + i * MINUTE) for i in range(page.limit)]
        page = next_page(page, got, server_ms=server_ms, interval_ms=MINUTE)
    expected = [(0, 499), (499, 499), (998, 499), (1497, 499), (1996, 4)]
    assert [(p.start_ms // MINUTE, p.limit) for p in pages] == expected


def test_paging_stops_when_a_page_brings_nothing_new() -> None:
    page = Page(start_ms=0, limit=10)
    assert next_page(page, [], server_ms=100 * MINUTE, interval_ms=MINUTE) is None
    assert next_page(Page(start_ms=None, limit=12), [_kline(0)], server_ms=100 * MINUTE, interval_ms=MINUTE) is None


def test_the_still_open_kline_is_never_kept() -> None:
    klines = [_kline(m * MINUTE) for m in (3, 1, 2)]
    assert [k.open_time.minute for k in closed_before(klines, 3 * MINUTE)] == [1, 2]


def test_backfill_starts_after_the_newest_stored_or_at_an_earlier_mark() -> None:
    assert starts(None, None, MINUTE) == [None]
    assert starts(5 * MINUTE, None, MINUTE) == [None, 5 * MINUTE]
    assert starts(None, 9 * MINUTE, MINUTE) == [10 * MINUTE]
    assert starts(4 * MINUTE, 9 * MINUTE, MINUTE) == [4 * MINUTE]
    assert starts(12 * MINUTE, 9 * MINUTE, MINUTE) == [10 * MINUTE]


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(" 0.5 ") == 0.5
    assert retry_after_seconds("Wed, 25 Nov 2026 10:00:30 GMT", now=_ts(2026, 11, 25, 10, 0, 0)) == 30.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None


def test_weight_pacer_keeps_a_minute_under_the_budget() -> None:
    now = [0.0]
    pacer = WeightPacer(10, clock=lambda: now[0])
    for _ in range(5):
        assert pacer.delay(2) == 0
        pacer.spend(2)
    assert pacer.delay(2) == 60.0
    now[0] = 30.0
    assert pacer.delay(2) == 30.0
    now[0] = 60.0
    assert pacer.delay(2) == 0


def test_weight_pacer_honours_a_block() -> None:
    now = [100.0]
    pacer = WeightPacer(1200, clock=lambda: now[0])
    pacer.block(2.5)
    assert pacer.delay(1) == 2.5
    pacer.block(1.0)  # a shorter block does not cut the longer one
    assert pacer.delay(1) == 2.5


@pytest.fixture
def fake_rest() -> ExchangeThread:
    fake = FaultyExchange(symbols=["btcusdt"], speed=1.0, update_seconds=1.0, start_ms=29_401_080 * MINUTE + 30_000)
    with ExchangeThread(fake) as exchange:
        yield exchange


def run_backfill(
    exchange: ExchangeThread, newest: datetime | None, mark_ms: int | None = None, stored: list[datetime] = ()
) -> list[ClosedKline]:
    stop = threading.Event()
    rest = BinanceRest(exchange.rest_url, weight_per_minute=1200, stop=stop)
    got: list[ClosedKline] = []
    backfiller = Backfiller(
        rest=rest,
        interval="1m",
        interval_ms=MINUTE,
        deliver=lambda kline: got.append(kline) is None,
        stop=stop,
        newest_open=lambda symbol, interval: newest,
        open_times=lambda symbol, interval, since, until: [t for t in stored if since <= t < until],
    )
    backfiller.backfill_symbol("btcusdt", mark_ms, server_ms=rest.server_time_ms())
    return got


def test_backfill_of_an_empty_database_fetches_the_newest_eleven_closed(fake_rest: ExchangeThread) -> None:
    fake = fake_rest.exchange
    got = run_backfill(fake_rest, None)
    last = fake.last_closed_index()
    assert got == fake.truth("BTCUSDT", last - 10, last)


def test_backfill_pages_through_a_long_gap_exactly(fake_rest: ExchangeThread) -> None:
    fake = fake_rest.exchange
    last = fake.last_closed_index()
    got = run_backfill(fake_rest, ms_to_datetime((last - 1200) * MINUTE))
    assert got == fake.truth("BTCUSDT", last - 1199, last)
    limits = [int(c.query["limit"]) for c in fake.rest_calls if c.path == "/fapi/v1/klines"]
    assert limits == [499, 499, 202]


def test_backfill_from_a_mark_refetches_what_the_writer_dropped(fake_rest: ExchangeThread) -> None:
    fake = fake_rest.exchange
    last = fake.last_closed_index()
    got = run_backfill(fake_rest, ms_to_datetime((last - 2) * MINUTE), mark_ms=(last - 5) * MINUTE)
    assert got == fake.truth("BTCUSDT", last - 5, last)


def test_backfill_refetches_from_a_hole_an_earlier_run_left(fake_rest: ExchangeThread) -> None:
    fake = fake_rest.exchange
    last = fake.last_closed_index()
    stored = [ms_to_datetime(i * MINUTE) for i in range(last - 20, last - 2) if i != last - 9]
    got = run_backfill(fake_rest, stored[-1], stored=stored)
    assert got == fake.truth("BTCUSDT", last - 9, last)


def test_rest_errors_other_than_rate_limits_are_raised(fake_rest: ExchangeThread) -> None:
    rest = BinanceRest(fake_rest.rest_url, weight_per_minute=1200, stop=threading.Event())
    with pytest.raises(RestError, match="HTTP 400"):
        rest.get("/fapi/v1/klines", {"symbol": "NOPEUSDT", "interval": "1m"}, weight=1)


def test_rate_limited_requests_wait_for_retry_after(fake_rest: ExchangeThread) -> None:
    fake = fake_rest.exchange
    fake.fail_rest(429, "1")
    rest = BinanceRest(fake_rest.rest_url, weight_per_minute=1200, stop=threading.Event())
    started = time.monotonic()
    rows = rest.get("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 2}, weight=1)
    assert len(rows) == 2
    assert time.monotonic() - started >= 1.0
    assert rest.rate_limited == 1


def _kline(open_ms: int) -> ClosedKline:
    base = closed_kline()
    return ClosedKline(
        **{**base.as_fields(), "open_time": ms_to_datetime(open_ms), "close_time": ms_to_datetime(open_ms + MINUTE - 1)}
    )


def _ts(*parts: int) -> float:
    return datetime(*parts, tzinfo=UTC).timestamp()
