"""Two ``ingest_klines`` processes on one database (failover): kill -9 either, nothing lost, nothing twice.

Real parts throughout: the fault-injecting fake Binance, SecantusDB, redis-server,
two ingest subprocesses and a daphne process, with a websocket client on ``/``
that counts the frames it gets for each close.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path

import pymongo
import pytest

from klines.testing.servers import RedisServer, SecantusServer, daphne, free_port, stop_process
from tests.fake_exchange import ExchangeThread, FaultyExchange
from tests.helpers import (
    SYMBOLS,
    Ingest,
    Reader,
    assert_ground_truth,
    ingest_env,
    make_exchange,
    stored,
    wait_for_complete,
    wait_until,
)

pytestmark = pytest.mark.e2e
POLL_SECONDS = 1.0  # the serving process's reconciliation with the database (the default)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis.log").start()
    yield server
    server.stop()


def kill_mid_burst(fake: FaultyExchange, ingest: Ingest) -> None:
    """Hold the closes for 1.5 s, then kill -9 ``ingest`` while the pile goes out."""
    burst = fake.current_index()
    fake.pause(1.5)
    wait_until(
        lambda: sum(fake.series.index_at(k.open_ms) >= burst for k in list(fake.closed_sent)) >= 2 * len(SYMBOLS),
        timeout=10,
        what="the burst to go out",
        every=0.005,
    )
    ingest.stop(signal.SIGKILL)


def hhmm(kline) -> str:
    return kline.open_time.astimezone(UTC).strftime("%H:%M")


def test_two_ingests_lose_nothing_store_nothing_twice_and_push_each_close_once(
    secantus: SecantusServer, database: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    fake = make_exchange(SYMBOLS)
    client = pymongo.MongoClient(secantus.uri, tz_aware=True)
    klines = client[database]["klines"]
    with ExchangeThread(fake) as exchange:
        env = ingest_env(
            secantus.uri, database, exchange, SYMBOLS, REDIS_URL=redis_server.url, KLINE_POLL_SECONDS=str(POLL_SECONDS)
        )
        ingests = [Ingest(env, tmp_path, "first").start(), Ingest(env, tmp_path, "second").start()]
        port = free_port()
        server = daphne(port, env, tmp_path / "daphne.log")
        reader = None
        try:
            wait_for_complete(klines, SYMBOLS, fake.last_closed_index() + 2, timeout=40)
            reader = Reader(port)
            wait_until(lambda: len(reader.frames) >= len(SYMBOLS), timeout=10, what="the frames sent on connect")
            # Kill the first mid-burst; the second carries on. Then the first comes back, and
            # the second is killed mid-burst: the one restarted takes over.
            kill_mid_burst(fake, ingests[0])
            wait_for_complete(klines, SYMBOLS, fake.last_closed_index() + 4, timeout=20)
            ingests[0] = Ingest(env, tmp_path, "first-again").start()
            wait_until(lambda: "closed klines from REST" in ingests[0].log, timeout=30, what="the restart's backfill")
            kill_mid_burst(fake, ingests[1])
            target = fake.last_closed_index() + 4
            wait_for_complete(klines, SYMBOLS, target, timeout=20)
            fake.max_close_rounds = fake.close_rounds  # no more closes: the frames can settle
            newest = {s: hhmm(stored(klines, s)[-1]) for s in SYMBOLS}
            wait_until(
                lambda: all(reader.coin_frames(s)[-1]["time"][-1] == newest[s] for s in SYMBOLS),
                timeout=10,
                what="the newest close at the client",
            )
            time.sleep(2 * POLL_SECONDS)  # a duplicate push would come from a reconciliation within this
        finally:
            if reader is not None:
                reader.close()
            for ingest in ingests:
                if ingest.alive():
                    ingest.stop(signal.SIGKILL)
            stop_process(server)
    for ingest in ingests:
        assert "Traceback" not in ingest.log, ingest.log[-3000:]
    assert_ground_truth(klines, fake, SYMBOLS, through=target, env=env)
    for symbol in SYMBOLS:
        frames = reader.coin_frames(symbol)
        shown_at_connect = frames[0]["time"][-1]
        rows = stored(klines, symbol)
        after = [hhmm(k) for k in rows][[hhmm(k) for k in rows].index(shown_at_connect) + 1 :]
        pushed = [frame["time"][-1] for frame in frames[1:]]
        duplicates = {close: n for close, n in Counter(pushed).items() if n > 1}
        assert duplicates == {}, f"{symbol}: closes pushed more than once"
        assert pushed == after, f"{symbol}: every close after connecting, once, in order"
    client.close()
