"""The REST client through a broken network: every transport failure is a retryable RestError, and the
backfill survives them all and then fetches exactly what is missing."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from klines.backoff import Backoff
from klines.binance.parse import ClosedKline
from klines.binance.rest import BinanceRest, RestError
from klines.ingest.backfill import Backfiller
from tests.fake_exchange import BrokenRest, ExchangeThread, FaultyExchange
from tests.helpers import wait_until

MINUTE = 60_000
TIMEOUT = 0.5  # the client's; the stall fault outlasts it


@pytest.fixture
def broken() -> Iterator[BrokenRest]:
    fake = FaultyExchange(symbols=["btcusdt"], speed=1.0, update_seconds=1.0, start_ms=29_401_080 * MINUTE + 30_000)
    with ExchangeThread(fake) as exchange, BrokenRest(("127.0.0.1", exchange.port)) as front:
        front.exchange = fake
        yield front


def client(front: BrokenRest) -> BinanceRest:
    return BinanceRest(front.url, weight_per_minute=1200, stop=threading.Event(), timeout=TIMEOUT)


@pytest.mark.parametrize(
    ("fault", "named"),
    [
        ("truncated", "RemoteProtocolError"),  # http.client's IncompleteRead under urllib
        ("garbage", "RemoteProtocolError"),  # BadStatusLine
        ("reset", "ReadError"),  # ConnectionResetError
        ("empty", "RemoteProtocolError"),  # RemoteDisconnected
        ("not-json", "not JSON"),
        ("stall", "ReadTimeout"),
    ],
)
def test_a_broken_answer_is_a_retryable_error_and_the_next_request_succeeds(
    broken: BrokenRest, fault: str, named: str
) -> None:
    rest = client(broken)
    broken.faults.append(fault)
    with pytest.raises(RestError, match=named):
        rest.get("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 2}, weight=1)
    assert len(rest.get("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 2}, weight=1)) == 2
    assert broken.served == [fault, "relayed"]


def test_the_backfill_rides_out_every_broken_answer_then_fetches_exactly_the_history(broken: BrokenRest) -> None:
    broken.faults.extend(BrokenRest.FAULTS * 2)
    stop = threading.Event()
    got: list[ClosedKline] = []
    backfiller = Backfiller(
        rest=client(broken),
        interval="1m",
        interval_ms=MINUTE,
        deliver=lambda kline: got.append(kline) is None,
        stop=stop,
        newest_open=lambda symbol, interval, before=None: None,
        stored_times=lambda symbol, interval, since, until: [],
        retry=Backoff(initial=0.05, maximum=0.1),
    )
    backfiller.start()
    try:
        backfiller.request(["btcusdt"])
        wait_until(lambda: len(got) >= 11, timeout=30, what="the history after the faults")
        assert backfiller._thread is not None and backfiller._thread.is_alive()
    finally:
        stop.set()
        backfiller.join(5)
    last = broken.exchange.last_closed_index()
    assert got == broken.exchange.truth("BTCUSDT", last - 10, last)
    assert not broken.faults
    assert backfiller.stats.failures == 2 * len(BrokenRest.FAULTS)
