"""KLINE_HISTORY: a first start stores the newest N closed klines of every stream, in the background.

The pure planning and the weight share run alone; the history loader runs in this process against the
fake exchange's REST and the test database; the end-to-end tests run the real ``ingest_klines`` command
against the fake exchange (a 1m kline closes every 0.25 s, or every second at ``speed=60``) and SecantusDB.
"""

from __future__ import annotations

import signal
import statistics
import threading
import time
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pymongo
import pytest
from pymongo.collection import Collection
from websockets.asyncio.server import ServerConnection

from binancews.config import ConfigError, load_config
from klines.binance.rest import BinanceRest, WeightPacer
from klines.ingest.history_load import HistoryLoader, Want, history_window, missing_below
from klines.simexchange.weight import WeightCounter
from klines.store.writes import save_klines
from klines.testing.servers import SecantusServer
from tests.fake_exchange import ExchangeThread, FaultyExchange
from tests.helpers import (
    Ingest,
    assert_ground_truth,
    complete_through,
    empty_record,
    index_of,
    ingest_env,
    make_exchange,
    migrate,
    stored,
    wait_until,
)

MINUTE = 60_000
SYMBOLS_MANY = 12
HISTORY_MANY = 450  # 1,500 (18,000 klines) measured the README's figures, in four minutes on a loaded machine
DEV = {"DJANGO_DEBUG": "true"}


# -- configuration -------------------------------------------------------------------------
def test_kline_history_defaults_to_one_rest_page() -> None:
    assert load_config(DEV).history == 1500
    assert load_config({**DEV, "KLINE_HISTORY": "0"}).ingest.history == 0
    assert load_config({**DEV, "KLINE_HISTORY": "100000"}).history == 100_000


@pytest.mark.parametrize("raw", ["-1", "abc", "1.5", "100001", "1e3"])
def test_a_bad_kline_history_is_one_line_naming_it(raw: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config({**DEV, "KLINE_HISTORY": raw})
    message = str(refused.value)
    assert message.startswith(f"KLINE_HISTORY: {raw!r} is not a number of klines from 0 (off) to 100000")
    assert "\n" not in message


# -- pure -----------------------------------------------------------------------------------
def test_the_window_holds_the_newest_closed_klines_only() -> None:
    # At 100:00.5 the kline opening at 99 has closed (at 99:59.999); the one opening at 100 is open.
    since, until = history_window(100 * MINUTE + 500, MINUTE, 10)
    assert [t // MINUTE for t in range(since, until) if t % MINUTE == 0] == list(range(90, 100))


def test_nothing_stored_wants_the_whole_window_from_the_newest_closed() -> None:
    want = missing_below([], server_ms=100 * MINUTE + 500, interval_ms=MINUTE, history=300)
    assert want == Want(end_ms=99 * MINUTE + 500, count=300)


def test_the_newest_eleven_stored_wants_the_rest_below_them() -> None:
    stored_ms = [m * MINUTE for m in range(89, 100)]  # what the backfill stored first
    want = missing_below(stored_ms, server_ms=100 * MINUTE + 500, interval_ms=MINUTE, history=300)
    assert want == Want(end_ms=89 * MINUTE - 1, count=289)


def test_a_history_cut_short_wants_only_what_is_below_it() -> None:
    # A crash after the newest page: a restart continues below it, whatever is missing above is the repair's.
    stored_ms = [m * MINUTE for m in (*range(50, 60), *range(80, 100))]
    want = missing_below(stored_ms, server_ms=100 * MINUTE, interval_ms=MINUTE, history=100)
    assert want == Want(end_ms=50 * MINUTE - 1, count=50)
    assert missing_below(stored_ms, server_ms=100 * MINUTE, interval_ms=MINUTE, history=50) is None


def test_a_weekly_grid_not_on_the_epoch_is_counted_on_the_stored_klines() -> None:
    week = 7 * 24 * 60 * MINUTE
    monday = 4 * 24 * 60 * MINUTE  # 1970-01-05: weekly klines open on Mondays
    stored_ms = [monday + n * week for n in range(95, 100)]
    want = missing_below(stored_ms, server_ms=monday + 100 * week, interval_ms=week, history=10)
    assert want == Want(end_ms=monday + 95 * week - 1, count=5)


def test_a_share_of_the_weight_leaves_the_rest_to_others() -> None:
    now = [0.0]
    pacer = WeightPacer(40, clock=lambda: now[0])
    pacer.spend(10)
    pacer.spend(10)
    assert pacer.delay(10, share=0.5) == 60.0  # the history's half is spent
    assert pacer.delay(10) == 0  # the backfill still has its half
    now[0] = 61.0
    assert pacer.delay(10, share=0.5) == 0


def test_the_simulator_counts_weight_per_minute_and_refuses_over_its_limit() -> None:
    now = [0.0]
    counter = WeightCounter(20, clock=lambda: now[0])
    assert counter.spend(10) == (10, None)
    assert counter.spend(10) == (20, None)
    assert counter.spend(1) == (20, 60.0)
    now[0] = 60.0
    assert counter.spend(10) == (10, None)
    assert (counter.most, counter.refused) == (20, 1)


# -- the loader in this process --------------------------------------------------------------
@pytest.fixture
def fake_rest() -> Iterator[ExchangeThread]:
    fake = FaultyExchange(symbols=[f"S{n:02d}USDT" for n in range(12)], speed=1.0, update_seconds=1.0)
    with ExchangeThread(fake) as exchange:
        yield exchange


@pytest.mark.django_db(transaction=True)
def test_the_history_keeps_to_its_share_of_the_weight_and_leaves_the_rest(fake_rest: ExchangeThread) -> None:
    """Twelve streams of 300 (weight 2 a page) on a budget of 20: the history spends its 10 and waits for the
    minute to pass, while a request of the backfill's goes at once."""
    fake = fake_rest.exchange
    stop = threading.Event()
    rest = BinanceRest(fake_rest.rest_url, weight_per_minute=20, stop=stop)
    loader = HistoryLoader(rest=rest, history=300, interval_ms=lambda interval: MINUTE, stop=stop)
    loader.start()
    try:
        loader.request((symbol, "1m") for symbol in fake.symbols)
        wait_until(lambda: loader.stats.streams >= 4, timeout=20, what="the history's share spent")
        time.sleep(1.5)  # it now waits for the minute, sending nothing
        assert loader.stats.weight == 8  # 1 + 4 x 2 <= 10 < 1 + 5 x 2
        assert rest.pacer.total_spent == 9
        started = time.monotonic()
        rows = rest.get("/fapi/v1/klines", {"symbol": "S00USDT", "interval": "1m", "limit": 12}, weight=1)
        assert len(rows) == 12 and time.monotonic() - started < 1.0  # the backfill is not held up
        assert loader.stats.streams == 4 and loader.pending == 0
        for symbol in fake.symbols[:4]:
            history = stored(django_klines(), symbol)
            assert len(history) == 300
            assert history == fake.truth(symbol, index_of(history[0]), index_of(history[-1]))
        assert stored(django_klines(), fake.symbols[4]) == []
    finally:
        stop.set()


def django_klines() -> Collection:
    """The klines collection of the test database (Django's connection)."""
    from django.db import connection

    return connection.get_collection("klines")


@pytest.mark.django_db(transaction=True)
def test_the_history_reads_the_exchanges_clock_and_never_stores_an_open_kline() -> None:
    """An exchange whose clock is ten hours behind ours (a simulator), before anything else read its clock: the
    history ends at the exchange's last closed kline, not at ours (which would take the open one as closed)."""
    behind = FaultyExchange(symbols=["BTCUSDT"], speed=1.0, update_seconds=1.0, start_ms=make_exchange([])._start_ms)
    with ExchangeThread(behind) as exchange:
        stop = threading.Event()
        rest = BinanceRest(exchange.rest_url, weight_per_minute=1200, stop=stop)
        loader = HistoryLoader(rest=rest, history=100, interval_ms=lambda interval: MINUTE, stop=stop)
        loader.start()
        try:
            loader.request([("BTCUSDT", "1m")])
            wait_until(lambda: loader.stats.streams == 1, timeout=20, what="the history")
        finally:
            stop.set()
        history = stored(django_klines(), "BTCUSDT")
        assert len(history) == 100
        assert index_of(history[-1]) in (behind.last_closed_index(), behind.last_closed_index() - 1)
        assert history == behind.truth("BTCUSDT", index_of(history[0]), index_of(history[-1]))


@pytest.mark.django_db(transaction=True)
def test_a_second_start_fetches_nothing_for_a_complete_window(fake_rest: ExchangeThread) -> None:
    fake = fake_rest.exchange
    last = fake.last_closed_index()
    save_klines(fake.truth("S00USDT", last - 309, last))
    stop = threading.Event()
    rest = BinanceRest(fake_rest.rest_url, weight_per_minute=1200, stop=stop)
    loader = HistoryLoader(rest=rest, history=300, interval_ms=lambda interval: MINUTE, stop=stop)
    loader.load("S00USDT", "1m", server_ms=rest.server_time_ms())
    assert loader.stats.requests == 0


# -- end to end: the real ingest ---------------------------------------------------------------
class TimedExchange(FaultyExchange):
    """Notes when the first stream connection came and when each close was sent (wall clock)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.first_connect: float | None = None  # time.monotonic(), as the REST calls' ``at``
        self.sent_at: dict[tuple[str, int], float] = {}  # (symbol, open ms) -> time.time()

    async def _handle_stream(self, connection: ServerConnection) -> None:
        if self.first_connect is None:
            self.first_connect = time.monotonic()
        await super()._handle_stream(connection)

    async def send(self, connection: ServerConnection, message: dict[str, Any] | str) -> None:
        if isinstance(message, dict) and message["data"]["k"]["x"]:
            self.sent_at.setdefault((message["data"]["s"], message["data"]["k"]["t"]), time.time())
        await super().send(connection, message)


def history_pages(fake: FaultyExchange) -> list:
    """The REST calls of the history: pages by ``endTime`` (the backfill's pages start at a time or are the 12)."""
    return [
        c
        for c in fake.rest_calls
        if c.path == "/fapi/v1/klines" and "endTime" in c.query and "startTime" not in c.query
    ]


def timed_exchange(symbols: list[str], **options: Any) -> TimedExchange:
    template = make_exchange(symbols)
    start_ms = template._start_ms
    return TimedExchange(
        symbols=symbols, **{"interval": "1m", "speed": 240.0, "update_seconds": 0.1, "start_ms": start_ms, **options}
    )


@pytest.fixture(scope="module")
def mongo_uri(secantus: SecantusServer) -> str:
    migrate(secantus.uri, "first_start")
    return secantus.uri


@pytest.fixture
def klines(mongo_uri: str) -> Iterator[Collection]:
    client = pymongo.MongoClient(mongo_uri, tz_aware=True)
    yield empty_record(client["first_start"])
    client.close()


@pytest.fixture
def ingests(tmp_path: Path) -> Iterator[list[Ingest]]:
    started: list[Ingest] = []
    try:
        yield started
    except BaseException:
        for ingest in started:
            print(f"--- {ingest.err_path} ---\n{ingest.log[-6000:]}")
        raise
    finally:
        for ingest in started:
            if ingest.alive():
                ingest.stop(signal.SIGKILL)


def run_ingest(ingests: list[Ingest], env: dict[str, str], workdir: Path, name: str = "ingest") -> Ingest:
    ingest = Ingest(env, workdir, name).start()
    ingests.append(ingest)
    return ingest


def has_history(klines: Collection, symbol: str, fake: FaultyExchange, history: int) -> bool:
    return complete_through(klines, symbol, fake.last_closed_index() - 1, at_least=history)


@pytest.mark.e2e
def test_a_first_start_stores_the_newest_history_after_the_stream_is_up(
    mongo_uri: str, klines: Collection, ingests: list[Ingest], tmp_path: Path
) -> None:
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    fake = timed_exchange(symbols)
    with ExchangeThread(fake) as exchange:
        env = ingest_env(mongo_uri, "first_start", exchange, symbols, KLINE_HISTORY="300")
        ingest = run_ingest(ingests, env, tmp_path)
        wait_until(lambda: all(has_history(klines, s, fake, 300) for s in symbols), timeout=60, what="the history")
        through = fake.last_closed_index() - 1
        code, _ = ingest.stop()
        assert code == 0, ingest.log[-3000:]
        assert_ground_truth(klines, fake, symbols, through=through, env=env)
    pages = history_pages(fake)
    assert fake.first_connect is not None and pages
    assert all(call.at > fake.first_connect for call in pages)  # the live stream was up first
    assert sorted(c.query["symbol"] for c in pages) == symbols  # one page each: 300 less the backfill's 11 or so
    assert all(int(c.query["limit"]) <= 300 for c in pages)
    for symbol in symbols:
        assert len(stored(klines, symbol)) >= 300
    assert "Traceback" not in ingest.log


@pytest.mark.e2e
def test_kline_history_zero_keeps_the_newest_eleven_of_before(
    mongo_uri: str, klines: Collection, ingests: list[Ingest], tmp_path: Path
) -> None:
    fake = timed_exchange(["BTCUSDT"])
    with ExchangeThread(fake) as exchange:
        env = ingest_env(mongo_uri, "first_start", exchange, ["BTCUSDT"], KLINE_HISTORY="0")
        first_closed = fake.last_closed_index()
        ingest = run_ingest(ingests, env, tmp_path)
        target = fake.last_closed_index() + 8
        wait_until(lambda: complete_through(klines, "BTCUSDT", target), timeout=30, what="closes stored")
        ingest.stop()
    oldest = index_of(stored(klines, "BTCUSDT")[0])
    assert first_closed - 12 <= oldest  # the newest 11 at start (a close or two may pass before the backfill)
    assert history_pages(fake) == []


@pytest.mark.e2e
def test_many_streams_load_their_history_while_live_closes_are_stored_on_time(
    mongo_uri: str, klines: Collection, ingests: list[Ingest], tmp_path: Path
) -> None:
    """Twelve symbols, 450 klines each (a page of weight 2): 5,400 klines of history go in while a close of each
    symbol comes every second; the closes are stored about as soon as they are sent, never queued behind
    the history (that would be seconds: SecantusDB stores a few thousand klines a second), and the exchange's
    request-weight limit (the ingest's budget) is never hit."""
    symbols = [f"S{n:02d}USDT" for n in range(SYMBOLS_MANY)]
    fake = timed_exchange(symbols, speed=60.0, update_seconds=0.5, weight_limit=1200)
    with ExchangeThread(fake) as exchange:
        env = ingest_env(mongo_uri, "first_start", exchange, symbols, KLINE_HISTORY=str(HISTORY_MANY))
        ingest = run_ingest(ingests, env, tmp_path)
        wait_until(
            lambda: all(has_history(klines, s, fake, HISTORY_MANY) for s in symbols), timeout=240, what="every history"
        )
        done = time.time()
        settle = fake.last_closed_index() + 2
        wait_until(lambda: all(complete_through(klines, s, settle) for s in symbols), timeout=30, what="settled")
        code, _ = ingest.stop()
        assert code == 0, ingest.log[-3000:]
        assert_ground_truth(klines, fake, symbols, through=settle, env=env)
    pages = history_pages(fake)
    loading = (min(c.at for c in pages), max(c.at for c in pages))
    late = lateness(klines, fake)
    during = [delay for sent, delay in late if sent <= done]
    print(
        f"history of {len(symbols)} streams: {len(pages)} pages in {loading[1] - loading[0]:.1f}s; "
        f"{len(during)} live closes meanwhile stored after p50 {statistics.median(during):.3f}s, "
        f"p99 {statistics.quantiles(during, n=100)[98]:.3f}s, max {max(during):.3f}s; "
        f"weight at most {fake.weight.most} a minute; {ingest.log.count('reconnecting')} reconnects"
    )
    # Enough closes to judge (the history takes seconds: 3,600 klines once took 4 s on a quiet machine, 48 closes).
    assert len(during) >= SYMBOLS_MANY * 3
    assert statistics.median(during) < 0.5  # queued behind the history's klines, a close would wait seconds
    assert fake.weight.refused == 0 and fake.weight.most <= 1200
    assert "QUEUE FULL" not in ingest.log and "rate limited" not in ingest.log


def lateness(klines: Collection, fake: TimedExchange) -> list[tuple[float, float]]:
    """(sent, seconds from sent to stored) of every close the stream sent."""
    late = []
    for row in klines.find({}, {"symbol": 1, "open_time": 1, "stored_at": 1}):
        key = (row["symbol"], int(row["open_time"].replace(tzinfo=UTC).timestamp() * 1000))
        sent = fake.sent_at.get(key)
        if sent is not None:
            stored_at = row["stored_at"].replace(tzinfo=UTC).timestamp()
            late.append((sent, max(0.0, stored_at - sent)))
    return late


@pytest.mark.e2e
def test_a_kill_mid_history_is_continued_by_the_next_start(
    mongo_uri: str, klines: Collection, ingests: list[Ingest], tmp_path: Path
) -> None:
    """3,000 klines are two pages; a budget of 40 leaves the history 20 a minute, so the second page waits:
    kill -9 then. The next start fetches only what is below the first page, and the record is whole."""
    fake = timed_exchange(["BTCUSDT"])
    with ExchangeThread(fake) as exchange:
        env = ingest_env(mongo_uri, "first_start", exchange, ["BTCUSDT"], KLINE_HISTORY="3000")
        first = run_ingest(ingests, {**env, "BINANCE_REST_WEIGHT_PER_MINUTE": "40"}, tmp_path, "first")
        wait_until(lambda: len(stored(klines, "BTCUSDT")) >= 1500, timeout=30, what="the first page")
        time.sleep(1.0)
        assert len(history_pages(fake)) == 1  # the second waits for the minute
        first.stop(signal.SIGKILL)
        killed = time.monotonic()
        second = run_ingest(ingests, env, tmp_path, "second")
        wait_until(lambda: has_history(klines, "BTCUSDT", fake, 3000), timeout=60, what="the whole history")
        through = fake.last_closed_index() - 1
        second.stop()
        assert_ground_truth(klines, fake, ["BTCUSDT"], through=through, env=env)
    again = [c for c in history_pages(fake) if c.at > killed]
    assert len(again) == 1 and int(again[0].query["limit"]) < 1500  # what was below the first page, no more
    assert index_of(stored(klines, "BTCUSDT")[0]) <= through - 2999


@pytest.mark.e2e
def test_a_new_listing_gets_its_history(
    mongo_uri: str, klines: Collection, ingests: list[Ingest], tmp_path: Path
) -> None:
    fake = timed_exchange(["BTCUSDT"])
    with ExchangeThread(fake) as exchange:
        env = ingest_env(
            mongo_uri,
            "first_start",
            exchange,
            ["BTCUSDT"],
            KLINE_HISTORY="300",
            KLINE_SYMBOLS="all",
            KLINE_SYMBOLS_REFRESH_SECONDS="0.5",
        )
        ingest = run_ingest(ingests, env, tmp_path)
        wait_until(lambda: has_history(klines, "BTCUSDT", fake, 300), timeout=60, what="the first history")
        listed_at = time.monotonic()
        fake.symbols.append("SOLUSDT")
        wait_until(lambda: has_history(klines, "SOLUSDT", fake, 300), timeout=60, what="the new listing's history")
        through = fake.last_closed_index() - 1
        ingest.stop()
        assert_ground_truth(klines, fake, ["BTCUSDT", "SOLUSDT"], through=through, env=env)
    pages = [c for c in history_pages(fake) if c.query["symbol"] == "SOLUSDT"]
    assert len(pages) == 1 and pages[0].at > listed_at
    assert "Traceback" not in ingest.log
