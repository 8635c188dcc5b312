"""Two ``ingest_klines`` processes on one database (failover): kill -9 either, nothing lost, nothing twice.

Real parts throughout: the fault-injecting fake Binance, SecantusDB, redis-server,
two ingest subprocesses and a daphne process, with a websocket client on ``/``
that counts the frames it gets for each close.
"""

from __future__ import annotations

import re
import signal
import urllib.request
from datetime import UTC
from pathlib import Path

import pymongo
import pytest

from klines.binance.parse import datetime_to_ms
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
PAUSE_SECONDS = 1.5  # the exchange holds its frames this long, then sends the pile (a burst)
# Longer than the pause, so a burst is a burst: with the helpers' 1.5 s both ingests took the pause
# for a dead link, reconnected and filled the held closes in from REST, late, after newer ones; on a
# loaded machine a fill-in could land more than a window of ten behind and never be shown.
SILENCE_SECONDS = "10"
WAIT = 120.0  # every wait is on a condition; this only bounds a hang on a machine loaded many times over
# The feed's reads per reconciliation: klines stored since the last look, then a sweep of a few symbols.
READS_PER_POLL = 2


def kill_mid_burst(fake: FaultyExchange, ingest: Ingest, klines: pymongo.collection.Collection, port: int) -> None:
    """Hold the closes for :data:`PAUSE_SECONDS`, then kill -9 ``ingest`` while the pile goes out.

    Then hold new closes until the survivor has stored every close sent and the serving process
    has reconciled twice: what the killed one stored but never published reaches the feed by
    reconciliation, and on a loaded machine newer closes arriving meanwhile (four a second) could
    push it out of the window before that, so no frame would ever show it.
    """
    burst = fake.current_index()
    fake.pause(PAUSE_SECONDS)
    wait_until(
        lambda: sum(fake.series.index_at(k.open_ms) >= burst for k in list(fake.closed_sent)) >= 2 * len(SYMBOLS),
        timeout=WAIT,
        what="the burst to go out",
        every=0.005,
    )
    ingest.stop(signal.SIGKILL)
    settle(fake, klines)
    wait_reconciled(port)
    fake.max_close_rounds = None  # the closes held meanwhile go out at once


def hhmm(kline) -> str:
    return kline.open_time.astimezone(UTC).strftime("%H:%M")


def reconcile_reads(port: int) -> int:
    """How many database reads the serving process's feed has finished (its ``/metrics``)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=WAIT) as response:
        text = response.read().decode()
    return int(float(re.search(r"^binancews_reconcile_read_seconds_count (\S+)$", text, re.M).group(1)))


def wait_reconciled(port: int) -> None:
    """Until two whole reconciliations finished from now (a read now in progress may belong to an older
    one), and the next began, so what they found has been pushed."""
    reads = reconcile_reads(port)
    wait_until(
        lambda: reconcile_reads(port) >= reads + 3 * READS_PER_POLL,
        timeout=WAIT,
        what="two reconciliations",
    )


def settle(fake: FaultyExchange, klines: pymongo.collection.Collection) -> dict[str, str]:
    """Hold the exchange's closes and wait until every close sent to a live ingest is stored; return the newest.

    A killed ingest's connection may have been sent a close the survivor's was not (yet): the
    survivor gets it once closes go on, so only what live connections were sent is waited for.
    """
    fake.max_close_rounds = fake.close_rounds
    while True:
        sent = fake.newest_closes_sent()  # a round in progress when the hold began may still add some
        try:
            wait_until(
                lambda sent=sent: all(datetime_to_ms(stored(klines, s)[-1].open_time) >= sent[s] for s in SYMBOLS),
                timeout=WAIT,
                what="the closes sent stored",
            )
        except AssertionError as exc:
            newest = {s: datetime_to_ms(stored(klines, s)[-1].open_time) for s in SYMBOLS}
            raise AssertionError(f"{exc}: sent {sent}, stored {newest}") from None
        if fake.newest_closes_sent() == sent:
            return {s: hhmm(stored(klines, s)[-1]) for s in SYMBOLS}


def positions(klines: pymongo.collection.Collection, symbol: str) -> tuple[list[str], dict[str, int]]:
    """The coin's stored open times (HH:MM, oldest first) and each one's place (the latest, should a day wrap)."""
    opens = [hhmm(k) for k in stored(klines, symbol)]
    return opens, {t: i for i, t in enumerate(opens)}


def caught_up(reader: Reader, klines: pymongo.collection.Collection, connected_at: dict[str, str]) -> bool:
    """Each coin's last frame shows a full window reaching at least the close stored when the client connected."""
    for symbol in SYMBOLS:
        frames = reader.coin_frames(symbol)
        if not frames or len(frames[-1]["values"]) < 10:
            return False
        _, place = positions(klines, symbol)
        if place.get(frames[-1]["time"][-1], -1) < place[connected_at[symbol]]:
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
            secantus.uri,
            database,
            exchange,
            SYMBOLS,
            REDIS_URL=redis_server.url,
            KLINE_POLL_SECONDS=str(POLL_SECONDS),
            KLINE_SILENCE_SECONDS=SILENCE_SECONDS,
        )
        ingests = [Ingest(env, tmp_path, "first").start(), Ingest(env, tmp_path, "second").start()]
        port = free_port()
        server = daphne(port, env, tmp_path / "daphne.log", timeout=WAIT)
        reader = None
        try:
            wait_for_complete(klines, SYMBOLS, fake.last_closed_index() + 2, timeout=WAIT)
            connected_at = {s: hhmm(stored(klines, s)[-1]) for s in SYMBOLS}
            reader = Reader(port)
            # The serving process may still be filling its payloads from the start-up backfill (a
            # frame per kline it gets); count the pushes from the first full frame of each coin that
            # shows what was stored when the client connected (not the newest close: on a loaded
            # machine a frame can trail a close every 0.25 s for good).
            wait_until(lambda: caught_up(reader, klines, connected_at), timeout=WAIT, what="full, caught-up frames")
            baseline = {s: len(reader.coin_frames(s)) - 1 for s in SYMBOLS}
            # Kill the first mid-burst; the second carries on. Then the first comes back, and
            # the second is killed mid-burst: the one restarted takes over.
            kill_mid_burst(fake, ingests[0], klines, port)
            wait_for_complete(klines, SYMBOLS, fake.last_closed_index() + 4, timeout=WAIT)
            ingests[0] = Ingest(env, tmp_path, "first-again").start()
            wait_until(lambda: "closed klines from REST" in ingests[0].log, timeout=WAIT, what="the restart's backfill")
            kill_mid_burst(fake, ingests[1], klines, port)
            target = fake.last_closed_index() + 4
            wait_for_complete(klines, SYMBOLS, target, timeout=WAIT)
            settle(fake, klines)
            # One more close, then none: a hole the restart's backfill filled below a close already pushed
            # sends no frame of its own (issue 23: a frame per change of the newest close); that close's
            # frame shows it.
            shown = {s: stored(klines, s)[-1].open_time for s in SYMBOLS}
            fake.max_close_rounds = fake.close_rounds + 1
            wait_until(
                lambda: all(stored(klines, s)[-1].open_time > shown[s] for s in SYMBOLS),
                timeout=WAIT,
                what="one more close stored",
            )
            newest = settle(fake, klines)  # no more closes: the record and the frames can settle
            wait_until(
                lambda: all(reader.coin_frames(s)[-1]["time"][-1] == newest[s] for s in SYMBOLS),
                timeout=WAIT,
                what="the newest close at the client",
            )
            wait_reconciled(port)  # a duplicate push would come from a reconciliation
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
    newest frame when closes of one coin come faster than it is sent one,
    so a close can arrive inside a later frame instead of leading its own. When
    ten or more newer closes come between two frames (a loaded machine), the
    older ones are out of the window before a frame could show them: a close is
    missed only if a frame's window spans it and no frame shows it.
    """
    problems = {}
    for symbol in SYMBOLS:
        frames = reader.coin_frames(symbol)[baseline[symbol] :]
        opens, place = positions(klines, symbol)
        expected = opens[place[frames[0]["time"][-1]] + 1 :]
        repeated = [f["time"][-1] for before, f in zip(frames, frames[1:], strict=False) if f == before]
        shown = {t for frame in frames[1:] for t in frame["time"]}
        spans = [(place[f["time"][0]], place[f["time"][-1]]) for f in frames[1:]]
        unseen = sorted(t for t in set(expected) - shown if any(lo <= place[t] <= hi for lo, hi in spans))
        if repeated or unseen:
            problems[symbol] = {"same frame twice": repeated, "never shown": unseen}
    return problems
