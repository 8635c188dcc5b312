"""Two ``ingest_klines`` processes on one database (failover): kill -9 either, nothing lost, nothing twice.

Real parts throughout: the fault-injecting fake Binance, SecantusDB, redis-server,
two ingest subprocesses and a daphne process, with a websocket client on ``/``
that counts the frames it gets for each close.
"""

from __future__ import annotations

import signal
import time
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


def current(reader: Reader, klines: pymongo.collection.Collection) -> bool:
    """Each coin's last frame shows a full window, up to the newest stored close."""
    for symbol in SYMBOLS:
        frames = reader.coin_frames(symbol)
        if not frames or len(frames[-1]["values"]) < 10 or frames[-1]["time"][-1] != hhmm(stored(klines, symbol)[-1]):
            return False
    return True


def test_two_ingests_lose_nothing_store_nothing_twice_and_show_each_close(
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
            # The serving process may still be filling its payloads from the start-up backfill (a
            # frame per kline it gets); count the pushes from the first full, current frame of each coin.
            wait_until(lambda: current(reader, klines), timeout=10, what="full, current frames")
            baseline = {s: len(reader.coin_frames(s)) - 1 for s in SYMBOLS}
            # Kill the first mid-burst; the second carries on. Then the first comes back, and
            # the second is killed mid-burst: the one restarted takes over.
            kill_mid_burst(fake, ingests[0])
            wait_for_complete(klines, SYMBOLS, fake.last_closed_index() + 4, timeout=20)
            ingests[0] = Ingest(env, tmp_path, "first-again").start()
            wait_until(lambda: "closed klines from REST" in ingests[0].log, timeout=30, what="the restart's backfill")
            kill_mid_burst(fake, ingests[1])
            target = fake.last_closed_index() + 4
            wait_for_complete(klines, SYMBOLS, target, timeout=20)
            # One more close, then none: the frames settle. A hole the restart's backfill filled below a
            # close already pushed sends no frame of its own (issue 23: a frame per change of the newest
            # close); that close's frame shows it.
            shown = {s: stored(klines, s)[-1].open_time for s in SYMBOLS}
            fake.max_close_rounds = fake.close_rounds + 1
            wait_until(
                lambda: all(stored(klines, s)[-1].open_time > shown[s] for s in SYMBOLS),
                timeout=20,
                what="the last close stored",
            )
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
    # Every close reached the client: its last frame of each coin is the stored truth's.
    for symbol in SYMBOLS:
        assert reader.coin_frames(symbol)[-1]["time"][-1] == hhmm(stored(klines, symbol)[-1])
    assert delivery_problems(reader, klines, baseline) == {}
    client.close()


def delivery_problems(reader: Reader, klines: pymongo.collection.Collection, baseline: dict[str, int]) -> dict:
    """Per coin, after the baseline frame: a frame pushed twice, or a stored close no frame showed.

    Each push has a newer close than the last. A kill -9 mid-burst can leave a
    close stored after a newer one (the survivor's backfill fills it in): it
    pushes nothing, the next close's frame shows it; and a client gets the
    newest frame when closes of one coin come faster than it is sent one, so a
    close can arrive inside a later frame instead of leading its own, or, when
    the daphne is starved for longer than ten closes take (2.5 s here), be
    jumped over (:func:`jumped_over`).
    """
    problems = {}
    for symbol in SYMBOLS:
        frames = reader.coin_frames(symbol)[baseline[symbol] :]
        opens = [hhmm(k) for k in stored(klines, symbol)]
        expected = opens[opens.index(frames[0]["time"][-1]) + 1 :]
        repeated = [f["time"][-1] for before, f in zip(frames, frames[1:], strict=False) if f == before]
        shown = {t for frame in frames[1:] for t in frame["time"]}
        unseen = [t for t in sorted(set(expected) - shown) if not jumped_over(t, frames, opens)]
        if repeated or unseen:
            problems[symbol] = {"same frame twice": repeated, "never shown": unseen}
    return problems


def jumped_over(time_: str, frames: list[dict], opens: list[str]) -> bool:
    """Whether the first frame newer than the close at ``time_`` shows only later closes: the newest frame
    replaced the ones not yet sent (issue 23), and the client skipped more closes than a frame shows."""
    position = opens.index(time_)
    for frame in frames:
        if opens.index(frame["time"][-1]) > position:
            return opens.index(frame["time"][0]) > position
    return False
