"""Funding rates from Binance's mark-price stream, on time, then confirmed or corrected by REST; holes inside the
mark-price and funding records repaired (issue 22, part 4).

The service tests run the ingest's :class:`IngestService` in this process against the
simulated exchange (its clock 30 times faster: a funding time passes a second and a half
after the start) and the test database: each takes a few seconds.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from binancews.config import load_config
from klines.binance.derivatives import parse_funding
from klines.binance.markprice import mark_stream_url, parse_mark_price_message
from klines.binance.parse import MalformedMessage, ms_to_datetime
from klines.binance.rest import BinanceRest
from klines.ingest.backfill import Page, fetch_page
from klines.ingest.derivatives import FUNDING_DELAY_MS, DerivativesRecorder, fetch_funding, fetch_mark_klines
from klines.ingest.derivatives_repair import DerivativesRepair, funding_holes
from klines.ingest.funding_stream import FundingWatch
from klines.ingest.metrics import IngestCollector
from klines.ingest.service import IngestService
from klines.models import FundingRate, Kline, MarkPriceKline
from klines.simexchange.derivatives import FUNDING_MS, funding_entry, mark_price_event
from klines.simexchange.server import SimulatedExchange
from klines.store.derivatives import save_funding, save_mark_klines, save_streamed_funding
from klines.store.writes import save_klines
from klines.testing.servers import TEST_SOURCE
from tests.conftest import ReadCounter
from tests.fake_exchange import ExchangeThread, FaultyExchange
from tests.helpers import wait_until

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
SPEED = 30.0
MINUTE = 60_000
FUNDING = (int(time.time() * 1000) // FUNDING_MS - 1) * FUNDING_MS  # a funding time of the simulated clock
LEAD_MS = 45_000  # the simulated clock starts this long before FUNDING (1.5 s of wall time)


parsed = parse_mark_price_message


def frame(**data: Any) -> str:
    event = {"e": "markPriceUpdate", "E": 1_000, "s": "BTCUSDT", "p": "9.5", "i": "9.4", "P": "9.5", "r": "0.0001"}
    return json.dumps({"stream": "btcusdt@markPrice@1s", "data": {**event, "T": 2_000, **data}})


# -- pure --------------------------------------------------------------------------------
def test_a_mark_price_frame_parses_to_exact_decimals() -> None:
    update = parse_mark_price_message(frame(r="-0.00037500"))
    assert (update.symbol, update.event_ms, update.next_funding_ms) == ("BTCUSDT", 1_000, 2_000)
    assert (str(update.funding_rate), str(update.mark_price)) == ("-0.00037500", "9.5")
    url = mark_stream_url("wss://fstream.binance.com/market/", ["BTCUSDT", "ethusdt"])
    assert url == "wss://fstream.binance.com/market/stream?streams=btcusdt@markPrice@1s/ethusdt@markPrice@1s"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("{", "markPrice.json"),
        (json.dumps({"data": {"e": "kline"}}), "markPrice.event"),
        (frame(r=""), "markPrice.r"),  # a delivery contract's: no funding
        (frame(p="abc"), "markPrice.p"),
        (frame(T="soon"), "markPrice.T"),
        (frame(s=None), "markPrice.s"),
        (json.dumps({"data": {"e": "markPriceUpdate", "s": "BTCUSDT", "E": 1, "p": "1", "r": "0"}}), "markPrice.T"),
    ],
)
def test_a_malformed_mark_price_frame_is_refused_with_its_part(text: str, kind: str) -> None:
    with pytest.raises(MalformedMessage) as refused:
        parse_mark_price_message(text)
    assert refused.value.kind == kind


def test_the_funding_is_the_last_rate_before_its_time_with_the_mark_price_at_it() -> None:
    watch = FundingWatch()
    updates = [frame(E=e, r=r, p=p, T=t) for e, r, p, t in [(1_000, "0.1", "9", 8_000), (7_000, "0.2", "10", 8_000)]]
    assert [watch.observe(parsed(u)) for u in updates] == [None, None]
    settled = watch.observe(parsed(frame(E=8_000, r="0.5", p="11", T=16_000)))
    assert settled is not None
    assert (settled.funding_time, settled.funding_rate, settled.mark_price) == (
        ms_to_datetime(8_000),
        Decimal("0.2"),
        Decimal("11"),
    )
    assert watch.observe(parsed(frame(E=9_000, r="0.5", p="11", T=16_000))) is None  # once
    assert watch.observe(parsed(frame(E=6_000, r="0.9", p="1", T=8_000))) is None  # late, out of order


def test_a_funding_time_seen_only_from_afar_is_left_to_rest() -> None:
    watch = FundingWatch()
    watch.observe(parsed(frame(E=1_000, T=100_000)))
    assert watch.observe(parsed(frame(E=100_500, T=200_000))) is None  # the last rate is 99 s old
    assert watch.stale == 1


def test_funding_holes_follow_the_symbol_s_period_even_when_it_changes() -> None:
    hour = 3_600_000
    assert funding_holes([0, 8 * hour, 24 * hour, 32 * hour]) == [(8 * hour, 24 * hour)]
    assert funding_holes([0, 4 * hour, 12 * hour, 16 * hour]) == [(4 * hour, 12 * hour)]  # a 4 h symbol
    assert funding_holes([0, 8 * hour, 16 * hour, 20 * hour, 24 * hour]) == []  # from 8 h to 4 h
    assert funding_holes([0, 9 * hour]) == [(0, 9 * hour)]  # longer than any period
    assert funding_holes([0, 8 * hour + 3, 16 * hour]) == []  # Binance's early times are a few ms off


def test_the_simulated_stream_agrees_with_its_rest_fundings() -> None:
    exchange = SimulatedExchange(symbols=SYMBOLS, start_ms=FUNDING + MINUTE)
    series = exchange.history_series("1m")
    for symbol in SYMBOLS:
        rest = funding_entry(series, symbol, FUNDING)
        before = mark_price_event(series, symbol, FUNDING - 1_000, stream="markPrice@1s")["data"]
        at = mark_price_event(series, symbol, FUNDING, stream="markPrice@1s")["data"]
        assert (before["r"], before["T"]) == (rest["fundingRate"], FUNDING)
        assert (at["p"], at["T"]) == (rest["markPrice"], FUNDING + FUNDING_MS)


# -- the ingest, in process -----------------------------------------------------------
class MangledExchange(FaultyExchange):
    """Changes mark-price updates on their way out: ``mangle(data)`` edits the event or returns a whole frame."""

    mangle = staticmethod(lambda data: None)

    async def send(self, connection: Any, message: dict[str, Any] | str) -> None:
        if isinstance(message, dict) and message["data"].get("e") == "markPriceUpdate":
            data = dict(message["data"])
            replaced = self.mangle(data)
            message = replaced if isinstance(replaced, str) else {**message, "data": data}
        await super().send(connection, message)


def exchange(cls: type[FaultyExchange] = FaultyExchange) -> FaultyExchange:
    return cls(symbols=SYMBOLS, speed=SPEED, update_seconds=0.1, start_ms=FUNDING - LEAD_MS)


@contextmanager
def ingest(fake: FaultyExchange, **overrides: Any) -> Iterator[IngestService]:
    with ExchangeThread(fake) as thread:
        env = {
            "DJANGO_DEBUG": "true",
            "KLINE_SYMBOLS": ",".join(SYMBOLS),
            "KLINE_INTERVALS": "1m",
            "BINANCE_WS_URL": thread.ws_url,
            "BINANCE_REST_URL": thread.rest_url,
            "KLINE_HISTORY": "0",
            "KLINE_SOURCE": TEST_SOURCE,
        }
        settings = replace(load_config(env).ingest, **overrides)
        service = IngestService(settings, on_stored=lambda batch: None)
        stop = threading.Event()
        runner = threading.Thread(target=service.run, args=(stop,), daemon=True)
        runner.start()
        try:
            yield service
        finally:
            stop.set()
            runner.join(10)
        assert not service.supervisor.failed.is_set(), service.supervisor.failure


def rest_round(service: IngestService, fake: FaultyExchange) -> None:
    """The recorder's next REST round for fundings (a minute past the hour), run here: the simulator's clock runs
    30 times fast, and the recorder waits for the next close by the wall clock (up to a minute)."""
    wait_until(lambda: fake.now_ms() > FUNDING + FUNDING_DELAY_MS, timeout=15, what="a minute past the funding")
    assert not service.derivatives.busy
    service.derivatives.catch_up(service.rest.server_time_ms())


def stored_funding(symbol: str) -> FundingRate | None:
    return FundingRate.objects.filter(symbol=symbol, funding_time=ms_to_datetime(FUNDING)).first()


def as_entry(row: FundingRate) -> dict[str, Any]:
    return {
        "symbol": row.symbol,
        "fundingTime": FUNDING,
        "fundingRate": str(row.funding_rate),
        "markPrice": str(row.mark_price),
    }


@pytest.mark.django_db(transaction=True)
def test_a_funding_reaches_the_store_from_the_stream_on_time_and_rest_confirms_or_corrects_it() -> None:
    wrong = "0.00099999"

    class WrongEth(MangledExchange):
        mangle = staticmethod(lambda data: data.update(r=wrong) if data["s"] == "ETHUSDT" else None)

    fake = exchange(WrongEth)
    series = fake.history_series("1m")
    with ingest(fake) as service:
        seen: dict[str, tuple[int, bool, dict]] = {}

        def both_seen() -> bool:
            for symbol in SYMBOLS:
                row = stored_funding(symbol)
                if row is not None and symbol not in seen:
                    seen[symbol] = (fake.now_ms(), row.from_stream, as_entry(row))
            return len(seen) == len(SYMBOLS)

        wait_until(both_seen, timeout=15, what="the funding from the stream", every=0.05)
        for symbol, (at, from_stream, _) in seen.items():
            assert from_stream, symbol
            assert FUNDING <= at < FUNDING + MINUTE  # REST is not asked before a minute past the hour
        assert seen["BTCUSDT"][2] == funding_entry(series, "BTCUSDT", FUNDING)
        assert seen["ETHUSDT"][2]["fundingRate"] == wrong

        def confirmed() -> bool:
            rows = [stored_funding(s) for s in SYMBOLS]
            return all(row is not None and not row.from_stream for row in rows)

        rest_round(service, fake)
        assert confirmed()
        for symbol in SYMBOLS:  # REST wins
            assert as_entry(stored_funding(symbol)) == funding_entry(series, symbol, FUNDING)
        counters = service.counters()
        assert (counters.funding_streamed, counters.funding_corrected["rate"]) == (2, 1)
        assert service.derivatives.confirmed == 1
        metrics = {m.name: m for m in IngestCollector(service).collect()}
        corrected = {s.labels["field"]: s.value for s in metrics["binancews_ingest_funding_corrected"].samples}
        assert corrected == {"rate": 1, "mark_price": 0, "removed": 0}


@pytest.mark.django_db(transaction=True)
def test_malformed_mark_price_frames_are_counted_and_skipped_and_the_ingest_carries_on() -> None:
    class Broken(MangledExchange):
        @staticmethod
        def mangle(data: dict) -> str | None:
            if data["E"] < FUNDING - 20_000 and data["s"] == "BTCUSDT":
                data["p"] = "NaN"
            return '{"stream": "ethusdt@markPrice@1s", "data": ' if data["E"] < FUNDING - 30_000 else None

    with ingest(exchange(Broken)) as service:
        wait_until(lambda: stored_funding("BTCUSDT") is not None, timeout=15, what="the funding after the bad frames")
        kinds = service.counters().malformed_kinds
        assert kinds["markPrice.p"] >= 1 and kinds["markPrice.json"] >= 1
        metrics = {m.name: m for m in IngestCollector(service).collect()}
        malformed = {s.labels["kind"]: s.value for s in metrics["binancews_ingest_malformed"].samples}
        assert malformed["markPrice.p"] == kinds["markPrice.p"]
        assert stored_funding("BTCUSDT").from_stream  # the stream still records it


@pytest.mark.django_db(transaction=True)
def test_kline_mark_prices_false_opens_no_mark_price_stream() -> None:
    fake = exchange()
    with ingest(fake, mark_prices=False) as service:
        after = ms_to_datetime(FUNDING)  # stored: closed a minute past the funding time
        wait_until(lambda: Kline.objects.filter(open_time__gte=after).exists(), timeout=15, what="klines past T")
        assert service.mark_connections == []
        assert fake.stream_requests and not any("markPrice" in path for path in fake.stream_requests)
        assert not FundingRate.objects.exists() and not MarkPriceKline.objects.exists()
        assert not any("markPrice" in c.path or "funding" in c.path for c in fake.rest_calls)


@pytest.mark.django_db(transaction=True)
def test_the_running_ingest_repairs_a_hole_in_the_mark_price_record() -> None:
    with ingest(exchange(), repair_seconds=0.5) as service:
        rows = MarkPriceKline.objects.filter(symbol="BTCUSDT", interval="1m")
        wait_until(lambda: rows.count() >= 5, timeout=15, what="mark-price klines")
        middle = rows.order_by("open_time")[2]
        rows.filter(pk=middle.pk).delete()
        wait_until(lambda: rows.filter(open_time=middle.open_time).exists(), timeout=15, what="the hole repaired")
        assert service.counters().derivatives_repaired >= 1


@pytest.fixture
def fake_rest() -> Iterator[ExchangeThread]:
    fake = FaultyExchange(symbols=SYMBOLS, speed=1.0, update_seconds=1.0, start_ms=FUNDING + 10 * MINUTE)
    with ExchangeThread(fake) as thread:
        yield thread


@pytest.mark.django_db(transaction=True)
def test_every_hole_inside_the_mark_price_and_funding_records_is_fetched_once(fake_rest: ExchangeThread) -> None:
    fake = fake_rest.exchange
    stop = threading.Event()
    rest = BinanceRest(fake_rest.rest_url, weight_per_minute=1200, stop=stop)
    now = rest.server_time_ms()
    first = FUNDING - 40 * MINUTE
    save_mark_klines(fetch_mark_klines(rest, "BTCUSDT", "1m", first, now, server_ms=now))
    save_funding(fetch_funding(rest, "BTCUSDT", FUNDING - 6 * FUNDING_MS, now))
    truth_marks = list(MarkPriceKline.objects.values_list("open_time", "close").order_by("open_time"))
    truth_funding = list(FundingRate.objects.values_list("funding_time", "funding_rate").order_by("funding_time"))
    marks = MarkPriceKline.objects.filter(symbol="BTCUSDT", interval="1m")
    gone = [truth_marks[n][0] for n in (3, 20, 21, 22)]
    marks.filter(open_time__in=gone).delete()
    FundingRate.objects.filter(funding_time__in=[truth_funding[n][0] for n in (1, 4)]).delete()

    repair = DerivativesRepair(
        rest=rest, symbols=lambda: ["BTCUSDT"], mark_intervals=["1m"], stop=stop, every_seconds=60
    )
    repair.scan()  # a new process after a crash: the record alone says what is missing
    assert list(MarkPriceKline.objects.values_list("open_time", "close").order_by("open_time")) == truth_marks
    assert (
        list(FundingRate.objects.values_list("funding_time", "funding_rate").order_by("funding_time")) == truth_funding
    )
    assert (repair.stats.holes, repair.stats.fetched) == (4, 6)  # two mark-price holes, two funding holes
    asked = len(fake.rest_calls)
    repair.scan()
    assert repair.stats.holes == 4
    assert [c.path for c in fake.rest_calls[asked:]] == ["/fapi/v1/time"]  # nothing fetched again


@pytest.mark.django_db(transaction=True)
def test_a_stream_funding_left_unconfirmed_by_a_crash_is_confirmed_by_the_next_start(fake_rest: ExchangeThread) -> None:
    series = fake_rest.exchange.history_series("1m")
    truth = parse_funding(funding_entry(series, "BTCUSDT", FUNDING))
    save_streamed_funding([replace(truth, funding_rate=Decimal("0.5"))])  # then the process died
    stop = threading.Event()
    rest = BinanceRest(fake_rest.rest_url, weight_per_minute=1200, stop=stop)
    recorder = DerivativesRecorder(
        rest=rest, symbols=lambda: ["BTCUSDT"], kline_intervals=["1m"], mark_intervals=["1m"], stop=stop
    )
    recorder.catch_up(rest.server_time_ms())
    row = FundingRate.objects.get(symbol="BTCUSDT", funding_time=truth.funding_time)
    assert (row.funding_rate, row.from_stream, recorder.corrected) == (truth.funding_rate, False, {"rate": 1})


@pytest.mark.django_db(transaction=True)
def test_the_mark_price_repair_keeps_within_the_rest_weight(fake_rest: ExchangeThread) -> None:
    """Fifteen single-kline holes and a budget of 8 a minute (3 spent on the record): the repair spends the rest,
    then waits for the minute."""
    stop = threading.Event()
    budget = 8
    rest = BinanceRest(fake_rest.rest_url, weight_per_minute=budget, stop=stop)
    now = rest.server_time_ms()
    save_mark_klines(fetch_mark_klines(rest, "BTCUSDT", "1m", now - 100 * MINUTE, now, server_ms=now))
    marks = MarkPriceKline.objects.filter(symbol="BTCUSDT", interval="1m")
    holes = [t for n, t in enumerate(marks.order_by("open_time").values_list("open_time", flat=True)) if n % 6 == 3]
    marks.filter(open_time__in=holes[:15]).delete()
    repair = DerivativesRepair(
        rest=rest, symbols=lambda: ["BTCUSDT"], mark_intervals=["1m"], stop=stop, every_seconds=60
    )
    runner = threading.Thread(target=repair.run, daemon=True)
    runner.start()
    try:
        wait_until(lambda: rest.pacer.total_spent >= budget, timeout=20, what="the minute's weight spent")
        time.sleep(1)  # the repair now waits for the minute, sending nothing
        assert rest.pacer.total_spent <= budget and rest.pacer.delay(1) > 40
        assert 0 < repair.stats.fetched < 15
    finally:
        stop.set()
        runner.join(5)


@pytest.mark.django_db(transaction=True)
def test_after_its_first_round_the_recorder_reads_only_past_the_ends_of_each_record(
    fake_rest: ExchangeThread, mongo_reads: ReadCounter
) -> None:
    """Each close starts a round: reading a year of 1m whole every minute (SecantusDB reads every match before it
    sorts) kept the recorder seconds behind per symbol. After the first round, every read of the klines and the
    mark-price klines is bounded by what the last round saw."""
    stop = threading.Event()
    rest = BinanceRest(fake_rest.rest_url, weight_per_minute=1200, stop=stop)
    now = rest.server_time_ms()
    klines, _ = fetch_page(rest, "BTCUSDT", "1m", Page(start_ms=now - 30 * MINUTE, limit=20))
    save_klines(klines)
    save_mark_klines(fetch_mark_klines(rest, "BTCUSDT", "1m", now - 30 * MINUTE, now, server_ms=now))
    recorder = DerivativesRecorder(
        rest=rest, symbols=lambda: ["BTCUSDT"], kline_intervals=["1m"], mark_intervals=["1m"], stop=stop
    )
    recorder.catch_up(rest.server_time_ms())
    first_round = len(mongo_reads.commands)
    recorder.catch_up(rest.server_time_ms())
    records = {Kline._meta.db_table, MarkPriceKline._meta.db_table}
    reads = [command for name, collection, command in mongo_reads.commands[first_round:] if collection in records]
    assert reads
    for command in reads:
        match = command["pipeline"][0]["$match"]
        assert "open_time" in match, f"a whole record read: {command['pipeline']}"


@pytest.mark.django_db(transaction=True)
def test_the_recorder_waits_while_klines_are_backfilled(fake_rest: ExchangeThread) -> None:
    """At 1,000 symbols a round costs 2,000 of the request weight: taken while the start-up backfill ran, it held
    the live service's klines back minutes. The recorder asks nothing until the klines are idle."""
    fake = fake_rest.exchange
    stop = threading.Event()
    klines_idle = threading.Event()
    rest = BinanceRest(fake_rest.rest_url, weight_per_minute=1200, stop=stop)
    recorder = DerivativesRecorder(
        rest=rest,
        symbols=lambda: ["BTCUSDT"],
        kline_intervals=["1m"],
        mark_intervals=["1m"],
        stop=stop,
        klines_idle=klines_idle.is_set,
    )
    asked = len(fake.rest_calls)
    runner = threading.Thread(target=recorder.run, daemon=True)
    runner.start()
    try:
        time.sleep(1.5)  # three of the recorder's checks of the klines
        assert fake.rest_calls[asked:] == [] and recorder.busy
        klines_idle.set()
        wait_until(lambda: MarkPriceKline.objects.filter(symbol="BTCUSDT").exists(), timeout=20, what="a round")
    finally:
        stop.set()
        runner.join(5)
