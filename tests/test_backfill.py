"""Backfill planning (pure), the REST pacing, and the backfill against the fake exchange's REST."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pytest

from klines.binance.parse import ClosedKline, ms_to_datetime
from klines.binance.rest import BinanceRest, RestError, WeightPacer, retry_after_seconds
from klines.ingest.backfill import (
    PAGE_LIMIT,
    Backfiller,
    Page,
    closed_before,
    first_page,
    kline_weight,
    next_page,
    start_after,
)
from klines.ingest.gaps import Gap, classify_gaps
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


def test_backfill_starts_after_the_newest_known_or_at_an_earlier_mark() -> None:
    assert start_after(None, None, MINUTE) is None
    assert start_after(5 * MINUTE, None, MINUTE) == 5 * MINUTE
    assert start_after(None, 9 * MINUTE, MINUTE) == 10 * MINUTE
    assert start_after(4 * MINUTE, 9 * MINUTE, MINUTE) == 4 * MINUTE
    assert start_after(12 * MINUTE, 9 * MINUTE, MINUTE) == 10 * MINUTE


def test_gaps_below_an_earlier_runs_kline_are_holes_the_rest_closed_while_nobody_stored() -> None:
    # Stored by an earlier run: 1, 2, 4, 5 (3 is a hole). Then nothing until 9, which this process stored.
    stored = [(1, True), (2, True), (4, True), (5, True), (9, False)]
    holes, missed = classify_gaps(
        [(m * MINUTE, earlier) for m, earlier in stored], interval_ms=MINUTE, last_ms=12 * MINUTE
    )
    assert holes == [Gap(first_ms=3 * MINUTE, last_ms=3 * MINUTE, missing=1)]
    assert missed == [
        Gap(first_ms=6 * MINUTE, last_ms=8 * MINUTE, missing=3),
        Gap(first_ms=10 * MINUTE, last_ms=12 * MINUTE, missing=3),
    ]


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


STARTED = datetime(2026, 1, 1, tzinfo=UTC)  # when the process under test started
EARLIER = STARTED - timedelta(days=1)  # stored_at of klines an earlier process stored


class FakeStore:
    """What the backfill reads from the store: open time -> stored_at."""

    def __init__(self, earlier: Iterable[int] = (), now: Iterable[int] = ()) -> None:
        self.rows = {ms_to_datetime(i * MINUTE): EARLIER for i in earlier}
        self.rows.update({ms_to_datetime(i * MINUTE): STARTED + timedelta(seconds=1) for i in now})

    def newest_open(self, symbol: str, interval: str, *, before: datetime | None = None) -> datetime | None:
        return max((t for t in self.rows if before is None or t < before), default=None)

    def stored_times(self, symbol: str, interval: str, since: datetime, until: datetime) -> list:
        return sorted((t, at) for t, at in self.rows.items() if since <= t < until)


def backfiller(exchange: ExchangeThread, store: FakeStore, got: list[ClosedKline]) -> Backfiller:
    stop = threading.Event()
    return Backfiller(
        rest=BinanceRest(exchange.rest_url, weight_per_minute=1200, stop=stop),
        interval="1m",
        interval_ms=MINUTE,
        deliver=lambda kline: got.append(kline) is None,
        stop=stop,
        newest_open=store.newest_open,
        stored_times=store.stored_times,
        started=STARTED,
    )


def run_backfill(exchange: ExchangeThread, store: FakeStore, mark_ms: int | None = None) -> list[ClosedKline]:
    """One first backfill of BTCUSDT by a fresh process; what it handed to the writer, oldest first, once each."""
    got: list[ClosedKline] = []
    filler = backfiller(exchange, store, got)
    filler.backfill_symbol("BTCUSDT", mark_ms, server_ms=filler.rest.server_time_ms())
    return sorted({k.open_time: k for k in got}.values(), key=lambda k: k.open_time)


def test_backfill_of_an_empty_database_fetches_the_newest_eleven_closed(fake_rest: ExchangeThread) -> None:
    fake = fake_rest.exchange
    got = run_backfill(fake_rest, FakeStore())
    last = fake.last_closed_index()
    assert got == fake.truth("BTCUSDT", last - 10, last)


def test_a_first_backfill_fetches_the_history_below_a_close_the_stream_stored_first(fake_rest: ExchangeThread) -> None:
    # REST (or the database) was down at start while the stream stored the newest close: the ten
    # before it are fetched all the same, not only what is newer than it.
    fake = fake_rest.exchange
    last = fake.last_closed_index()
    got = run_backfill(fake_rest, FakeStore(now=[last]))
    assert got == fake.truth("BTCUSDT", last - 10, last)


def test_the_history_is_fetched_once_per_process(fake_rest: ExchangeThread) -> None:
    fake = fake_rest.exchange
    last = fake.last_closed_index()
    got: list[ClosedKline] = []
    filler = backfiller(fake_rest, FakeStore(now=[last]), got)
    server_ms = filler.rest.server_time_ms()
    filler.backfill_symbol("BTCUSDT", None, server_ms=server_ms)
    filler.backfill_symbol("BTCUSDT", None, server_ms=server_ms)
    newest_pages = [c for c in fake.rest_calls if c.path == "/fapi/v1/klines" and "startTime" not in c.query]
    assert len(newest_pages) == 1
    assert len(got) == HISTORY


def test_a_failed_first_backfill_fetches_the_history_again(fake_rest: ExchangeThread) -> None:
    fake = fake_rest.exchange
    last = fake.last_closed_index()
    got: list[ClosedKline] = []
    filler = backfiller(fake_rest, FakeStore(now=[last]), got)
    fake.fail_rest(503, None)
    with pytest.raises(RestError, match="HTTP 503"):
        filler.backfill_symbol("BTCUSDT", None, server_ms=filler.rest.server_time_ms())
    filler.backfill_symbol("BTCUSDT", None, server_ms=filler.rest.server_time_ms())
    assert got == fake.truth("BTCUSDT", last - 10, last)


def test_backfill_pages_through_a_long_gap_exactly(fake_rest: ExchangeThread) -> None:
    # Stopped for longer than the hole scan looks back: everything since the newest stored is fetched.
    fake = fake_rest.exchange
    last = fake.last_closed_index()
    got = run_backfill(fake_rest, FakeStore(earlier=range(last - 1210, last - 1199)))
    assert got == fake.truth("BTCUSDT", last - 1199, last)
    limits = [int(c.query["limit"]) for c in fake.rest_calls if c.path == "/fapi/v1/klines"]
    assert limits == [HISTORY + 1, 499, 499, 202]


def test_klines_closed_while_stopped_are_fetched_below_a_close_the_stream_stored(fake_rest: ExchangeThread) -> None:
    fake = fake_rest.exchange
    last = fake.last_closed_index()
    got = run_backfill(fake_rest, FakeStore(earlier=range(last - 40, last - 30), now=[last]))
    assert got == fake.truth("BTCUSDT", last - 30, last)


def test_backfill_from_a_mark_refetches_what_the_writer_dropped(fake_rest: ExchangeThread) -> None:
    fake = fake_rest.exchange
    last = fake.last_closed_index()
    got = run_backfill(fake_rest, FakeStore(earlier=range(last - 30, last - 1)), mark_ms=(last - 20) * MINUTE)
    assert got == fake.truth("BTCUSDT", last - 20, last)


def test_backfill_refetches_from_a_hole_an_earlier_run_left(fake_rest: ExchangeThread, caplog) -> None:
    fake = fake_rest.exchange
    last = fake.last_closed_index()
    hole = last - 25
    got = run_backfill(fake_rest, FakeStore(earlier=[i for i in range(last - 40, last - 2) if i != hole]))
    assert got == fake.truth("BTCUSDT", hole, last)
    assert caplog.text.count("has a hole at") == 1
    assert f"BTCUSDT has a hole at {ms_to_datetime(hole * MINUTE)}" in caplog.text


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
