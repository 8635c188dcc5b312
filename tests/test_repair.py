"""Hole repair: every hole the record has, whatever its age, is fetched by the running ingest, paced; a crash
leaves nothing the next start does not repair; holes the exchange itself has are recorded, not refetched.

The end-to-end tests run the real ``ingest_klines`` command against the fake exchange
(:class:`FaultyExchange`, a 1m kline closes every 0.25 s) and a real SecantusDB, with a
record of a few thousand klines stored beforehand (older than the start-up hole scan's
1,000 intervals).
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pymongo
import pytest
from pymongo.collection import Collection

from klines.binance.parse import ms_to_datetime
from klines.binance.rest import BinanceRest
from klines.ingest.backfill import Backfiller, kline_weight
from klines.ingest.gaps import Gap, without
from klines.ingest.repair import HoleRepair, unanswered
from klines.models import ExchangeGap
from klines.store.exchange_gaps import exchange_gaps, remember_exchange_gap
from klines.store.writes import save_klines
from klines.testing.servers import SecantusServer
from tests.fake_exchange import ExchangeThread, FaultyExchange
from tests.helpers import (
    BASE_INDEX,
    INTERVAL_MS,
    Ingest,
    assert_ground_truth,
    closed_kline,
    empty_record,
    index_of,
    ingest_env,
    make_exchange,
    manage,
    migrate,
    store_klines,
    stored,
    wait_until,
)

DATABASE = "repair"
SYMBOL = "btcusdt"
RECORD = 2500  # klines stored before the ingest starts, ending at the last closed one
MINUTE = 60_000


# -- pure ------------------------------------------------------------------------------
def test_a_gap_without_the_known_exchange_gaps() -> None:
    gap = Gap(first_ms=10 * MINUTE, last_ms=19 * MINUTE, missing=10)
    assert without(gap, [], MINUTE) == [gap]
    assert without(gap, [(0, 30 * MINUTE)], MINUTE) == []
    parts = without(gap, [(12 * MINUTE, 13 * MINUTE), (19 * MINUTE, 25 * MINUTE)], MINUTE)
    assert parts == [
        Gap(first_ms=10 * MINUTE, last_ms=11 * MINUTE, missing=2),
        Gap(first_ms=14 * MINUTE, last_ms=18 * MINUTE, missing=5),
    ]


def test_what_rest_did_not_answer_of_a_hole() -> None:
    gap = Gap(first_ms=10 * MINUTE, last_ms=19 * MINUTE, missing=10)
    assert unanswered(gap, [t * MINUTE for t in range(10, 20)], MINUTE) == []
    assert unanswered(gap, [], MINUTE) == [gap]
    assert unanswered(gap, [t * MINUTE for t in (10, 11, 15, 16, 17, 18, 19)], MINUTE) == [
        Gap(first_ms=12 * MINUTE, last_ms=14 * MINUTE, missing=3)
    ]


# -- in process: the store's reads, pacing, what the writer rejected -------------------
@pytest.mark.django_db(transaction=True)
def test_the_exchange_gaps_are_read_from_an_index() -> None:
    first, last = closed_kline(offset=5).open_time, closed_kline(offset=9).open_time
    remember_exchange_gap("btcusdt", "1m", first, last)
    remember_exchange_gap("BTCUSDT", "1m", first, last)  # once
    assert exchange_gaps("BTCUSDT", "1m") == [(first, last)]
    from django.db import connection

    from klines.store import pipelines

    plan = connection.database.command(
        "aggregate", ExchangeGap._meta.db_table, pipeline=pipelines.exchange_gaps("BTCUSDT", "1m"), explain=True
    )["queryPlanner"]["winningPlan"]
    assert "IXSCAN" in str(plan) and "COLLSCAN" not in str(plan), plan


@pytest.mark.django_db(transaction=True)
def test_the_scan_finds_every_hole_chunk_by_chunk() -> None:
    """Chunks of 10: holes at a chunk's end, at the next one's start, inside one, and a whole chunk missing."""
    holes = {9, 19, 20, 35, *range(40, 50), 59}
    save_klines([closed_kline("BTCUSDT", offset) for offset in range(70) if offset not in holes])
    stop = threading.Event()
    repair = HoleRepair(
        rest=BinanceRest("http://127.0.0.1:9", weight_per_minute=10, stop=stop),
        interval="1m",
        interval_ms=MINUTE,
        symbols=lambda: ["BTCUSDT"],
        deliver=lambda kline: True,
        stop=stop,
        every_seconds=60,
        chunk=10,
    )
    found = repair.holes("BTCUSDT")
    assert sorted((g.first_ms // MINUTE - BASE_INDEX, g.missing) for g in found) == [
        (9, 1),
        (19, 2),
        (35, 1),
        (40, 10),
        (59, 1),
    ]


@pytest.fixture
def fake_rest() -> Iterator[ExchangeThread]:
    fake = FaultyExchange(symbols=[SYMBOL], speed=1.0, update_seconds=1.0, start_ms=(BASE_INDEX + 3000) * MINUTE)
    with ExchangeThread(fake) as exchange:
        yield exchange


@pytest.mark.django_db(transaction=True)
def test_the_repair_keeps_within_the_configured_rest_weight(fake_rest: ExchangeThread) -> None:
    """Twenty old single-kline holes: the repair spends at most the budget, then waits for the minute to pass."""
    holes = {100 * n for n in range(1, 21)}
    save_klines([closed_kline(SYMBOL.upper(), offset) for offset in range(2100) if offset not in holes])
    budget = 12
    stop = threading.Event()
    rest = BinanceRest(fake_rest.rest_url, weight_per_minute=budget, stop=stop)
    repair = HoleRepair(
        rest=rest,
        interval="1m",
        interval_ms=MINUTE,
        symbols=lambda: [SYMBOL.upper()],
        deliver=lambda kline: bool(save_klines([kline])),
        stop=stop,
        every_seconds=60,
    )
    repair.start()
    try:
        fake = fake_rest.exchange
        wait_until(lambda: rest.pacer.total_spent >= budget - 1, timeout=20, what="the budget to be spent")
        time.sleep(2)  # the repair now waits for the minute, sending nothing
        calls = [c for c in fake.rest_calls if c.path in ("/fapi/v1/klines", "/fapi/v1/time")]
        spent = sum(kline_weight(int(c.query["limit"])) if "limit" in c.query else 1 for c in calls)
        assert spent <= budget
        assert rest.pacer.delay(1) > 40
        assert 0 < repair.stats.fetched < len(holes)
    finally:
        stop.set()


@pytest.mark.django_db(transaction=True)
def test_a_kline_the_writer_rejected_no_longer_counts_as_delivered(fake_rest: ExchangeThread) -> None:
    fake = fake_rest.exchange
    last = fake.last_closed_index()
    got: list = []
    stop = threading.Event()
    filler = Backfiller(
        rest=BinanceRest(fake_rest.rest_url, weight_per_minute=1200, stop=stop),
        interval="1m",
        interval_ms=MINUTE,
        deliver=lambda kline: got.append(kline) is None,
        stop=stop,
        newest_open=lambda symbol, interval, before=None: None,
        stored_times=lambda *args: [],
    )
    server_ms = filler.rest.server_time_ms()
    filler.backfill_symbol("BTCUSDT", None, server_ms=server_ms)
    rejected = got[-1]
    filler.forget(rejected)  # what the service does when the writer reports a REJECTED kline
    got.clear()
    filler.backfill_symbol("BTCUSDT", None, server_ms=server_ms)
    assert [index_of(k) for k in got] == [last]


# -- end to end ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mongo_uri(secantus: SecantusServer) -> str:
    migrate(secantus.uri, DATABASE)
    return secantus.uri


@pytest.fixture
def klines(mongo_uri: str) -> Iterator[Collection]:
    client = pymongo.MongoClient(mongo_uri, tz_aware=True)
    client[DATABASE]["exchange_gaps"].delete_many({})
    yield empty_record(client[DATABASE])
    client[DATABASE].command("collMod", "klines", validator={})
    client.close()


class Harness:
    """The fake exchange, a stored record and ingest commands against them; every ingest is killed at the end."""

    def __init__(self, mongo_uri: str, workdir: Path, stack: ExitStack) -> None:
        self.mongo_uri = mongo_uri
        self.workdir = workdir
        self.stack = stack
        self.ingests: list[Ingest] = []

    def env(self, fake: FaultyExchange, mongo_uri: str | None = None, **settings: str) -> dict[str, str]:
        exchange = self.stack.enter_context(ExchangeThread(fake))
        return ingest_env(mongo_uri or self.mongo_uri, DATABASE, exchange, [SYMBOL], **settings)

    def start(
        self,
        fake: FaultyExchange,
        missing: Iterable[int] = (),
        untraded: Iterable[int] = (),
        record: int = RECORD,
        **settings: str,
    ) -> tuple[Ingest, dict[str, str], int]:
        """Store the last ``record`` closed klines but ``missing`` (offsets from the oldest, which is returned;
        the exchange has no ``untraded`` ones) and start the ingest."""
        env = self.env(fake, **settings)
        first = fake.last_closed_index() - record + 1
        fake.untraded.update(first + n for n in untraded)
        offsets = [first + n - BASE_INDEX for n in set(range(record)) - set(missing)]
        store_klines(env, {SYMBOL.upper(): sorted(offsets)}, batch=True)
        return self.ingest(env), env, first

    def ingest(self, env: dict[str, str], name: str = "ingest") -> Ingest:
        ingest = Ingest(env, self.workdir, name).start()
        self.ingests.append(ingest)
        return ingest


@pytest.fixture
def harness(mongo_uri: str, klines: Collection, tmp_path: Path) -> Iterator[Harness]:
    with ExitStack() as stack:
        harness = Harness(mongo_uri, tmp_path, stack)
        try:
            yield harness
        except BaseException:
            for ingest in harness.ingests:
                print(f"--- {ingest.err_path} ---\n{ingest.log[-6000:]}")
            raise
        finally:
            for ingest in harness.ingests:
                if ingest.alive():
                    ingest.stop(signal.SIGKILL)


def stored_indexes(klines: Collection) -> set[int]:
    return {index_of(k) for k in stored(klines, SYMBOL)}


def stopped(ingest: Ingest) -> None:
    code, _ = ingest.stop(signal.SIGTERM)
    assert code == 0, ingest.log[-3000:]


def scans(ingest: Ingest) -> int:
    return ingest.log.count("hole repair scan done")


@pytest.mark.e2e
def test_an_old_hole_is_filled_by_the_running_ingest(harness: Harness, klines: Collection) -> None:
    fake = make_exchange([SYMBOL])
    ingest, env, first = harness.start(fake, KLINE_REPAIR_SECONDS="1")
    wait_until(lambda: max(stored_indexes(klines)) > first + RECORD + 4, timeout=30, what="the stream to store")
    hole = first + 500  # some 2,000 intervals before the newest: no start-up scan looks that far back
    klines.delete_one({"symbol": SYMBOL.upper(), "open_time": ms_to_datetime(hole * INTERVAL_MS)})
    assert hole not in stored_indexes(klines)
    wait_until(lambda: hole in stored_indexes(klines), timeout=20, what="the running ingest to refill the hole")
    assert "hole repair: BTCUSDT 1m has 1 holes (1 klines)" in ingest.log
    stopped(ingest)
    assert_ground_truth(klines, fake, [SYMBOL], through=first + RECORD, env=env)


@pytest.mark.e2e
def test_a_kill_in_the_middle_of_a_repair_is_repaired_by_the_next_start(harness: Harness, klines: Collection) -> None:
    fake = make_exchange([SYMBOL])
    # Nine pages of 499 (weight 2 each). Start-up spends 4 to 6 of the budget of 11 and the repair's clock 1:
    # one to three pages go out, the others wait for the minute to pass.
    hole = range(100, 4100)
    ingest, env, first = harness.start(
        fake,
        hole,
        record=5000,
        KLINE_REPAIR_SECONDS="1",
        BINANCE_REST_WEIGHT_PER_MINUTE="11",
        KLINE_MARK_PRICES="false",  # the budget above is counted for klines only
    )
    in_hole = lambda: len({first + n for n in hole} & stored_indexes(klines))  # noqa: E731
    wait_until(lambda: in_hole() >= 499, timeout=30, what="a page of the hole to be stored", every=0.05)
    assert in_hole() < len(hole)
    ingest.stop(signal.SIGKILL)
    again = harness.ingest({**env, "BINANCE_REST_WEIGHT_PER_MINUTE": "1200"}, "again")
    wait_until(lambda: in_hole() == len(hole), timeout=30, what="the next start to repair the rest")
    stopped(again)
    assert_ground_truth(klines, fake, [SYMBOL], through=first + 5000, env=env)


@pytest.mark.e2e
def test_a_kline_the_writer_rejected_is_repaired_once_the_database_takes_it(
    harness: Harness, klines: Collection
) -> None:
    fake = make_exchange([SYMBOL])
    ingest, env, first = harness.start(fake, KLINE_REPAIR_SECONDS="1")
    wait_until(lambda: max(stored_indexes(klines)) > first + RECORD + 4, timeout=30, what="the stream to store")
    refused = fake.current_index() + 4
    refused_at = ms_to_datetime(refused * INTERVAL_MS)
    klines.database.command("collMod", "klines", validator={"open_time": {"$ne": refused_at}})
    wait_until(lambda: f"REJECTED BTCUSDT 1m {refused_at}" in ingest.log, timeout=20, what="the rejection")
    wait_until(lambda: max(stored_indexes(klines)) > refused + 2, timeout=20, what="later closes to be stored")
    assert refused not in stored_indexes(klines)
    klines.database.command("collMod", "klines", validator={})
    wait_until(lambda: refused in stored_indexes(klines), timeout=20, what="the rejected kline to be repaired")
    stopped(ingest)
    assert_ground_truth(klines, fake, [SYMBOL], through=refused + 2, env=env)


@pytest.mark.e2e
def test_a_hole_the_exchange_has_is_recorded_once_and_reported(harness: Harness, klines: Collection) -> None:
    fake = make_exchange([SYMBOL])
    untraded = range(300, 305)
    ingest, env, first = harness.start(fake, untraded, untraded, KLINE_REPAIR_SECONDS="0.5")
    wait_until(lambda: "recorded as an exchange gap" in ingest.log, timeout=30, what="the exchange gap")
    after = scans(ingest)
    wait_until(lambda: scans(ingest) >= after + 3, timeout=20, what="three more scans")
    start = str((first + 300) * INTERVAL_MS)
    assert len([c for c in fake.rest_calls if c.query.get("startTime") == start]) == 1
    stopped(ingest)
    since, until = (ms_to_datetime(i * INTERVAL_MS).isoformat() for i in (first, max(stored_indexes(klines)) + 1))
    status = manage(
        ["klines_status", "--symbols", SYMBOL, "--since", since, "--until", until, "--grace", "0"],
        env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output, _ = status.communicate(timeout=30)
    gap = f"{ms_to_datetime((first + 300) * INTERVAL_MS):%Y-%m-%d %H:%M}"
    assert f"1 exchange gaps (5 klines never traded): {gap}" in output, output
    assert status.returncode == 0, output


@pytest.mark.e2e
def test_a_collection_without_the_unique_index_stops_the_ingest_with_one_line(
    harness: Harness, klines: Collection
) -> None:
    fake = make_exchange([SYMBOL])
    unmigrated = f"unmigrated_{uuid.uuid4().hex[:8]}"  # a database `migrate` never ran on
    ingest = harness.ingest({**harness.env(fake), "MONGO_DATABASE": unmigrated})
    wait_until(lambda: not ingest.alive(), timeout=30, what="the ingest to stop")
    assert ingest.process.returncode == 1
    lines = [line for line in ingest.log.splitlines() if line.strip()]
    assert len(lines) == 1, ingest.log
    assert f"collection {unmigrated}.klines has no unique index" in lines[0]
    assert "python manage.py migrate" in lines[0]
    assert fake.rest_calls == [] and fake.connects == 0


@pytest.mark.e2e
def test_the_unique_index_is_checked_once_a_late_database_comes_up_before_any_exchange_read(
    harness: Harness, tmp_path: Path
) -> None:
    server = SecantusServer(tmp_path / "late" / "data")  # not started: the ingest starts without its database
    fake = make_exchange([SYMBOL])
    ingest = harness.ingest(harness.env(fake, server.uri))  # the late server is new: never migrated
    wait_until(lambda: "database unavailable" in ingest.log, timeout=30, what="the ingest to wait for its database")
    server.start()
    try:
        wait_until(lambda: not ingest.alive(), timeout=40, what="the ingest to stop")
        assert ingest.process.returncode == 1
        assert f"collection {DATABASE}.klines has no unique index" in ingest.log
        assert fake.rest_calls == [] and fake.connects == 0  # nothing read from the exchange meanwhile
        client = pymongo.MongoClient(server.uri)
        assert client[DATABASE]["klines"].count_documents({}) == 0
        client.close()
    finally:
        server.stop()
