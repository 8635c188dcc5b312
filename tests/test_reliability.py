"""The real ``ingest_klines`` command through each fault of a fake Binance: nothing missed, nothing twice.

Every test runs the command as a subprocess against :class:`FaultyExchange`
(compressed clock: a 1m kline closes every 0.25 s) and a real SecantusDB, injects
its fault, lets the ingest recover, stops it with a signal (exit code 0), and
ends with :func:`assert_ground_truth`.
"""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pymongo
import pytest
from pymongo.collection import Collection

from klines.testing.servers import SecantusServer
from klines.window import HISTORY
from tests.fake_exchange import ExchangeThread, FaultyExchange
from tests.helpers import (
    Ingest,
    assert_ground_truth,
    complete_through,
    empty_record,
    ingest_env,
    make_exchange,
    migrate,
    stored,
    wait_for_complete,
    wait_until,
)

pytestmark = pytest.mark.e2e
SYMBOLS = ["btcusdt", "ethusdt", "xrpusdt"]
DATABASE = "reliability"
# A 1m kline closes every 3 s: the stream alone needs over 30 s to store a payload's history.
SLOW = 20.0


@pytest.fixture(scope="module")
def mongo_uri(secantus: SecantusServer) -> str:
    migrate(secantus.uri, DATABASE)
    return secantus.uri


@pytest.fixture
def klines(mongo_uri: str) -> Iterator[Collection]:
    client = pymongo.MongoClient(mongo_uri, tz_aware=True)
    yield empty_record(client[DATABASE])
    client.close()


@contextmanager
def running(
    fake: FaultyExchange, mongo_uri: str, workdir: Path, symbols: list[str] = SYMBOLS, **settings: str
) -> Iterator[tuple[Ingest, dict[str, str]]]:
    """The fake exchange and the ingest command against it; the command is stopped (SIGKILL) if still running."""
    with ExchangeThread(fake) as exchange:
        env = ingest_env(mongo_uri, DATABASE, exchange, symbols, **settings)
        ingest = Ingest(env, workdir).start()
        try:
            yield ingest, env
        except BaseException:
            print(f"--- ingest log ({ingest.err_path}) ---\n{ingest.log[-6000:]}")
            raise
        finally:
            if ingest.alive():
                ingest.stop(signal.SIGKILL)


def settle(klines: Collection, fake: FaultyExchange, symbols: list[str], ahead: int = 3, timeout: float = 20) -> int:
    """Wait until every symbol is stored without gaps ``ahead`` klines past the last closed one; return that index."""
    target = fake.last_closed_index() + ahead
    wait_for_complete(klines, symbols, target, timeout=timeout)
    return target


def stopped_cleanly(ingest: Ingest, sig: int = signal.SIGTERM) -> str:
    code, took = ingest.stop(sig)
    assert code == 0, ingest.log[-3000:]
    assert took < 5
    assert ", 0 left unwritten" in ingest.stdout
    return ingest.log


def stats_lines(log: str) -> list[dict[str, int]]:
    """The counters of each periodic stats line."""
    lines = re.findall(r"stats: (.*?); lag", log)
    return [{name: int(n) for n, name in re.findall(r"(\d+) ([a-z]+(?: [a-z]+)*)", line)} for line in lines]


def test_first_start_backfills_the_history_then_follows_the_stream(klines, mongo_uri, tmp_path) -> None:
    fake = make_exchange(SYMBOLS)
    with running(fake, mongo_uri, tmp_path) as (ingest, env):
        target = settle(klines, fake, SYMBOLS)
        wait_until(lambda: len(stats_lines(ingest.log)) >= 5, timeout=10, what="five stats lines")
        log = stopped_cleanly(ingest)
    # The fake's clock runs 240 times faster than ours: lags are still measured on the exchange's clock.
    lags = [float(v) for v in re.findall(r" [A-Z]+USDT (-?[0-9.]+)s", log)]
    assert lags and min(lags) >= 0, f"negative lags in the stats lines: {sorted(lags)[:5]}"
    first_requests = [c for c in fake.rest_calls if c.path == "/fapi/v1/klines"][: len(SYMBOLS)]
    assert {c.query["symbol"] for c in first_requests} == {s.upper() for s in SYMBOLS}
    assert all("startTime" not in c.query and int(c.query["limit"]) > HISTORY for c in first_requests)
    assert fake.connects == 1
    assert_ground_truth(klines, fake, SYMBOLS, through=target, env=env)


def first_closes_stored(klines: Collection, symbols: list[str]) -> bool:
    """Every symbol has a kline stored, and none a full history yet."""
    counts = [len(stored(klines, s)) for s in symbols]
    assert max(counts) < HISTORY, "the test is too slow to show anything: the stream stored a full history"
    return min(counts) > 0


@pytest.mark.parametrize(("status", "retry_after"), [(503, None), (429, "1")], ids=["rest-503", "rest-429"])
def test_the_history_arrives_when_the_stream_stores_first(status, retry_after, klines, mongo_uri, tmp_path) -> None:
    fake = make_exchange(SYMBOLS, speed=SLOW)
    fake.fail_rest(status, retry_after, times=100_000)  # REST answers nothing else until the test clears it
    with running(fake, mongo_uri, tmp_path) as (ingest, env):
        wait_until(lambda: first_closes_stored(klines, SYMBOLS), timeout=30, what="the stream's first closes")
        fake.rest_faults.clear()
        # The newest HISTORY klines at once (the next retry comes within 10 s), not one close at a time.
        target = settle(klines, fake, SYMBOLS, ahead=0, timeout=20)
        stopped_cleanly(ingest)
    assert_ground_truth(klines, fake, SYMBOLS, through=target, env=env)


def test_a_lost_connection_is_reconnected_and_the_gap_backfilled(klines, mongo_uri, tmp_path) -> None:
    fake = make_exchange(SYMBOLS)
    with running(fake, mongo_uri, tmp_path) as (ingest, env):
        settle(klines, fake, SYMBOLS)
        # The server closes the link (a close frame, as at Binance's 24-hour mark) and refuses
        # handshakes for a while: about eight klines close while the ingest cannot get back in.
        fake.refuse(2.0)
        assert fake.kill_connections() == 1
        wait_until(lambda: fake.connects == 2, timeout=10, what="a reconnect")
        settle(klines, fake, SYMBOLS)
        # The TCP connection drops without a close frame.
        fake.refuse(1.0)
        assert fake.kill_connections(abort=True) == 1
        wait_until(lambda: fake.connects == 3, timeout=10, what="a second reconnect")
        target = settle(klines, fake, SYMBOLS)
        log = stopped_cleanly(ingest)
    assert fake.rejected_handshakes >= 2
    assert "stream lost: server sent a close frame" in log
    assert log.count("stream lost") == 2
    assert_ground_truth(klines, fake, SYMBOLS, through=target, env=env)


def test_a_stalled_connection_trips_the_watchdog(klines, mongo_uri, tmp_path) -> None:
    fake = make_exchange(SYMBOLS)
    with running(fake, mongo_uri, tmp_path, KLINE_SILENCE_SECONDS="1") as (ingest, env):
        settle(klines, fake, SYMBOLS)
        assert fake.stall_connections() == 1
        wait_until(lambda: fake.connects >= 2, timeout=10, what="the watchdog to reconnect")
        target = settle(klines, fake, SYMBOLS)
        log = stopped_cleanly(ingest)
    assert "no message for 1s (watchdog)" in log
    assert_ground_truth(klines, fake, SYMBOLS, through=target, env=env)


def test_dropped_frames_and_closes_only_rest_has_are_backfilled(klines, mongo_uri, tmp_path) -> None:
    fake = make_exchange(SYMBOLS)
    with running(fake, mongo_uri, tmp_path) as (ingest, env):
        settle(klines, fake, SYMBOLS)
        now = fake.current_index()
        fake.skip_stream_closes(range(now + 1, now + 4))
        fake.drop_rate = 0.3
        wait_until(lambda: fake.closes_skipped >= 9, timeout=10, what="closes only REST serves")
        wait_until(lambda: fake.frames_dropped >= 15, timeout=10, what="dropped frames")
        fake.drop_rate = 0.0
        target = settle(klines, fake, SYMBOLS)
        log = stopped_cleanly(ingest)
    assert "the stream skipped" in log
    assert fake.connects == 1  # recovered without reconnecting
    assert_ground_truth(klines, fake, SYMBOLS, through=target, env=env)


def test_pings_are_answered_within_the_message_rate_limit(klines, mongo_uri, tmp_path) -> None:
    # 50 pings a second: answering each would break Binance's 10 messages a second.
    fake = make_exchange(SYMBOLS, ping_interval=0.02, pong_timeout=1.0)
    with running(fake, mongo_uri, tmp_path) as (ingest, env):
        wait_until(lambda: fake.pings > 60, timeout=10, what="sixty pings")
        target = settle(klines, fake, SYMBOLS)
        stopped_cleanly(ingest)
    assert fake.pong_timeouts == 0
    assert 0 < fake.pong_frames < fake.pings
    assert not fake.over_limit
    assert fake.connects == 1
    assert_ground_truth(klines, fake, SYMBOLS, through=target, env=env)


def malformed_frames(fake: FaultyExchange) -> list[tuple[str, str | dict[str, Any]]]:
    """(the offending part the log must name, frame) for each kind of bad input."""
    index = fake.last_closed_index()  # a kline that has closed: a still-open one marked closed is future-dated

    def frame(**k_changes: Any) -> dict[str, Any]:
        event = fake.series.kline("BTCUSDT", index).stream_event(closed=True, event_ms=fake.now_ms())
        event["data"]["k"].update(k_changes)
        return event

    no_k = frame()
    del no_k["data"]["k"]
    still_open = fake.series.kline("BTCUSDT", index + 1).stream_event(closed=True, event_ms=fake.now_ms())
    other_event = frame()
    other_event["data"]["e"] = "aggTrade"
    return [
        ("invalid JSON", '{"stream": "btcusdt@kline_1m", "data": {"e": "kli'),
        ("frame has no 'data'", {"stream": "btcusdt@kline_1m", "result": None, "id": 1}),
        ("data has no 'k'", no_k),
        ("k.c is not a number: '96,000.5'", frame(c="96,000.5")),
        ("unexpected event type 'aggTrade'", other_event),
        ("closes after the exchange's own event time", still_open),
        ("unexpected stream DOGEUSDT@1m", frame(s="DOGEUSDT")),
        ("unexpected stream BTCUSDT@7m", frame(i="7m")),
    ]


def test_malformed_frames_and_repeated_closes_are_skipped(klines, mongo_uri, tmp_path) -> None:
    fake = make_exchange(SYMBOLS, duplicate_closes=True, late_repeat=2)
    with running(fake, mongo_uri, tmp_path) as (ingest, env):
        settle(klines, fake, SYMBOLS)
        bad = malformed_frames(fake)
        fake.inject(frame for _, frame in bad)
        wait_until(lambda: not fake.injected, timeout=5, what="the bad frames to go out")
        target = settle(klines, fake, SYMBOLS)
        log = stopped_cleanly(ingest)
    for offending, _ in bad:
        assert log.count(offending) == 1, offending
    final = stats_lines(log)[-1]
    assert final["malformed"] == 6
    assert final["unknown streams"] == 2
    assert final["duplicates skipped"] > 0
    assert "Traceback" not in log
    assert fake.connects == 1
    assert_ground_truth(klines, fake, SYMBOLS, through=target, env=env)


def test_rest_rate_limits_and_errors_are_ridden_out(klines, mongo_uri, tmp_path) -> None:
    fake = make_exchange(SYMBOLS)
    fake.fail_rest(429, "1")
    fake.fail_rest(418, "1")
    fake.fail_rest(503, None)  # not a rate limit: the round fails and is retried with backoff
    with running(fake, mongo_uri, tmp_path) as (ingest, env):
        wait_until(lambda: not fake.rest_faults, timeout=10, what="the rate-limited answers to go out")
        wait_until(lambda: fake.rest_calls[-1].status == 200, timeout=10, what="a request after the last wait")
        target = settle(klines, fake, SYMBOLS)
        log = stopped_cleanly(ingest, signal.SIGINT)
    calls = fake.rest_calls
    limited = [(i, c) for i, c in enumerate(calls) if c.status in (429, 418)]
    assert [c.status for _, c in limited] == [429, 418]
    for i, call in limited:
        wait = calls[i + 1].at - call.at
        assert wait >= 1.0 - 0.05, f"request {i + 1} came {wait:.2f}s after a {call.status}"
    assert "rate limited (429)" in log
    assert "IP banned (418)" in log
    assert "failed: HTTP 503" in log
    assert_ground_truth(klines, fake, SYMBOLS, through=target, env=env)


def test_streams_are_split_across_connections(klines, mongo_uri, tmp_path) -> None:
    symbols = [f"coin{i:02d}usdt" for i in range(12)]
    fake = make_exchange(symbols, max_streams=5)
    with running(fake, mongo_uri, tmp_path, symbols, KLINE_STREAMS_PER_CONNECTION="5") as (ingest, env):
        target = settle(klines, fake, symbols)
        stopped_cleanly(ingest)
    assert sorted(fake.streams_per_connect) == [2, 5, 5]
    assert fake.rejected_handshakes == 0
    assert fake.client_messages == 0  # streams are named in the URL: nothing is sent
    assert_ground_truth(klines, fake, symbols, through=target, env=env)


@pytest.fixture(scope="module")
def outage_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecantusServer]:
    """A SecantusDB of its own, for tests that stop and restart it (on the same data directory)."""
    server = SecantusServer(tmp_path_factory.mktemp("outage") / "data").start()
    migrate(server.uri, DATABASE)
    yield server
    server.stop()


@pytest.mark.parametrize("queue_size", [10_000, 5], ids=["queued", "queue-overflow"])
def test_a_database_outage_loses_nothing(queue_size, outage_server, tmp_path) -> None:
    server = outage_server
    if server.process is None:  # a failed run left it stopped
        server.start()
    client = pymongo.MongoClient(server.uri, tz_aware=True)
    try:
        klines = empty_record(client[DATABASE])
        fake = make_exchange(SYMBOLS, speed=1200)  # twenty klines a second
        with running(fake, server.uri, tmp_path, KLINE_QUEUE_SIZE=str(queue_size)) as (ingest, env):
            settle(klines, fake, SYMBOLS, ahead=5)
            server.stop()
            down_from = fake.current_index()
            # Sixty simulated minutes close while the database is down.
            wait_until(lambda: fake.current_index() >= down_from + 60, timeout=10, what="an hour of closes")
            if queue_size > 100:
                # and long enough for writes to fail (pymongo gives up selecting a server after 5 s)
                wait_until(lambda: "database unavailable" in ingest.log, timeout=15, what="a failed write")
            server.start()
            if queue_size > 100:
                target = settle(klines, fake, SYMBOLS, ahead=10, timeout=30)
            else:
                # No new closes: the backfill catches up on what the full queue dropped (a stop
                # now could leave holes only the next start would fill).
                fake.max_close_rounds = fake.close_rounds
                target = fake.last_closed_index() - 1
                wait_for_complete(klines, SYMBOLS, target, timeout=30)
            log = stopped_cleanly(ingest)
        during = [s for s in stats_lines(log) if s["queued"] > 0]
        assert during, "no stats line saw klines waiting for the database"
        assert during[-1]["messages"] > during[0]["messages"], "the stream was not read during the outage"
        if queue_size < 100:
            assert "QUEUE FULL" in log
            assert stats_lines(log)[-1]["dropped"] > 0
        else:
            assert "database unavailable" in log
            assert "database back after" in log
            assert "QUEUE FULL" not in log
        assert fake.connects == 1
        assert_ground_truth(klines, fake, SYMBOLS, through=target, env=env)
    finally:
        client.close()


def test_the_history_arrives_when_the_database_comes_up_after_the_ingest(outage_server, tmp_path) -> None:
    """Until the database says whose record it holds, the ingest asks the exchange nothing; then it records."""
    server = outage_server
    if server.process is None:  # a failed run left it stopped
        server.start()
    client = pymongo.MongoClient(server.uri, tz_aware=True)
    try:
        klines = empty_record(client[DATABASE])
        server.stop()
        fake = make_exchange(SYMBOLS, speed=SLOW)
        with running(fake, server.uri, tmp_path) as (ingest, env):
            wait_until(lambda: "nothing is read from the exchange" in ingest.log, timeout=30, what="the wait")
            assert (fake.connects, fake.rest_calls) == (0, [])
            server.start()
            target = settle(klines, fake, SYMBOLS, ahead=0, timeout=25)
            stopped_cleanly(ingest)
        assert_ground_truth(klines, fake, SYMBOLS, through=target, env=env)
    finally:
        client.close()


def test_sigterm_in_a_burst_writes_what_is_queued_and_exits_in_time(klines, mongo_uri, tmp_path) -> None:
    symbols = [f"burst{i:02d}usdt" for i in range(16)]
    fake = make_exchange(symbols, update_seconds=0.5)
    with running(fake, mongo_uri, tmp_path, symbols, KLINE_SILENCE_SECONDS="3") as (ingest, env):
        settle(klines, fake, symbols, ahead=1, timeout=30)
        burst = fake.current_index()
        fake.pause(1.5)  # six closes per symbol pile up, then go out at once
        wait_until(
            lambda: sum(fake.series.index_at(k.open_ms) >= burst for k in list(fake.closed_sent)) >= 5 * len(symbols),
            timeout=10,
            what="the burst to go out",
            every=0.005,
        )
        log = stopped_cleanly(ingest)
        queued = int(re.search(r"stopping: (\d+) klines queued", log).group(1))
        assert queued > 0, "the burst was written before SIGTERM arrived"
        # What was received is stored, in order: no symbol has a hole.
        assert all(complete_through(klines, s, 0) for s in symbols)
        # A restart backfills the rest, and the holes an earlier run could leave (a dropped kline).
        holes = []
        for symbol in symbols[:3]:
            deleted = stored(klines, symbol)[-5].open_time
            klines.delete_one({"symbol": symbol.upper(), "open_time": deleted})
            holes.append(f"backfill: {symbol.upper()} has a hole at {deleted}; refetching from there")
        # The restart's first backfill round fails, so the stream stores each symbol's first new
        # closes before the backfill reaches it. The klines that closed while no ingest ran then lie
        # below a stored kline, like a hole; they are fetched, but not reported as holes. (Reported
        # as holes, they were the "fourth hole" of a busy machine, where the round came late.)
        fake.fail_rest(503, None, times=len(symbols))
        again = Ingest(env, tmp_path, "again").start()
        try:
            target = settle(klines, fake, symbols, ahead=1, timeout=30)
            log = stopped_cleanly(again)
            assert [hole for hole in holes if hole not in log] == []
            assert log.count("has a hole at") == len(holes)
            assert "closed while no ingest stored them" in log
        finally:
            if again.alive():
                again.stop(signal.SIGKILL)
    assert_ground_truth(klines, fake, symbols, through=target, env=env)


def test_the_fake_closes_a_link_that_does_not_answer_pings() -> None:
    """The fake enforces what Binance does, so the ping test above means something."""
    import websocket

    class Deaf(websocket.WebSocket):
        def pong(self, payload: str | bytes = "") -> None:
            pass

    fake = make_exchange(SYMBOLS, ping_interval=0.1, pong_timeout=0.3)
    with ExchangeThread(fake) as exchange:
        ws = websocket.create_connection(f"{exchange.ws_url}/stream?streams=btcusdt@kline_1m", class_=Deaf, timeout=5)
        # Every ping in flight times out, not only the first: at least one.
        wait_until(lambda: fake.pong_timeouts >= 1, timeout=5, what="the fake to give up on pongs")
        ws.close()
        ws.shutdown()

        flood = websocket.create_connection(f"{exchange.ws_url}/stream?streams=btcusdt@kline_1m", timeout=5)
        for n in range(12):
            flood.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": n}))
        wait_until(lambda: len(fake.over_limit) == 1, timeout=5, what="the fake to cut off a chatty client")
        flood.close()
        flood.shutdown()
