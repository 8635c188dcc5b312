"""Nothing that arrives may stop storing, and no thread dies silently: the real ``ingest_klines`` end to end.

A close the store cannot hold (``1E+9999``) used to kill the writer thread while the
process kept reading: a silent, total loss. Now it is refused as malformed and the
ingest goes on storing. A thread that does die takes the process down, non-zero.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pymongo
import pytest
from pymongo.collection import Collection

from klines.testing.servers import SecantusServer, manage
from tests.fake_exchange import ExchangeThread
from tests.helpers import Ingest, assert_ground_truth, ingest_env, make_exchange, wait_for_complete, wait_until

pytestmark = pytest.mark.e2e
SYMBOLS = ["btcusdt", "ethusdt"]


@pytest.fixture
def klines(secantus: SecantusServer, database: str) -> Iterator[Collection]:
    client = pymongo.MongoClient(secantus.uri, tz_aware=True)
    yield client[database]["klines"]
    client.close()


def test_a_close_the_store_cannot_hold_is_skipped_and_storing_goes_on(klines, secantus, database, tmp_path) -> None:
    fake = make_exchange(SYMBOLS)
    with ExchangeThread(fake) as exchange:
        env = ingest_env(secantus.uri, database, exchange, SYMBOLS)
        ingest = Ingest(env, tmp_path).start()
        try:
            wait_for_complete(klines, SYMBOLS, fake.last_closed_index() + 2, timeout=30)
            index = fake.current_index()
            for close in ("1E+9999", "1" * 40):
                event = fake.series.kline("BTCUSDT", index).stream_event(closed=True, event_ms=fake.now_ms())
                event["data"]["k"]["c"] = close
                fake.inject([event])
            wait_until(lambda: not fake.injected, timeout=5, what="the bad closes to go out")
            target = fake.last_closed_index() + 8
            wait_for_complete(klines, SYMBOLS, target, timeout=30)
            code, _ = ingest.stop(signal.SIGTERM)
        finally:
            if ingest.alive():
                ingest.stop(signal.SIGKILL)
            print(f"--- ingest log ---\n{ingest.log[-4000:]}")
    assert code == 0
    assert ingest.log.count("k.c does not fit a Decimal128") == 2
    assert "2 malformed (k.c 2)" in ingest.log
    assert "Traceback" not in ingest.log
    assert_ground_truth(klines, fake, SYMBOLS, through=target, env=env)


# A bug in the backfill thread, planted in the real command's process (test-only; no production hook).
BROKEN_BACKFILL = """
from pathlib import Path
from django.core.management import call_command
from klines.ingest.backfill import Backfiller

trigger = Path({trigger!r})
take = Backfiller._take

def broken_take(self):
    if trigger.exists():
        raise RuntimeError("planted bug in the backfill")
    return take(self)

Backfiller._take = broken_take
call_command("ingest_klines")
"""


def test_a_thread_that_dies_takes_the_process_down_non_zero(klines, secantus, database, tmp_path: Path) -> None:
    fake = make_exchange(SYMBOLS)
    trigger = tmp_path / "break-the-backfill"
    with ExchangeThread(fake) as exchange:
        env = ingest_env(secantus.uri, database, exchange, SYMBOLS)
        with open(tmp_path / "out", "wb") as out, open(tmp_path / "err", "wb") as err:
            process = manage(
                ["shell", "--no-imports", "-c", BROKEN_BACKFILL.format(trigger=str(trigger))],
                env,
                stdout=out,
                stderr=err,
            )
        try:
            wait_for_complete(klines, SYMBOLS, fake.last_closed_index() + 2, timeout=30)
            trigger.touch()
            code = wait_until(lambda: process.poll(), timeout=15, what="the ingest to exit after its backfill died")
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait(10)
            log = (tmp_path / "err").read_text(errors="replace")
            print(f"--- ingest log ---\n{log[-4000:]}")
    stdout = (tmp_path / "out").read_text(errors="replace")
    assert code != 0
    assert "thread 'kline-backfill' died: RuntimeError: planted bug in the backfill" in log
    assert "Traceback" in log and "broken_take" in log  # the traceback of the thread's failure
    assert "ingest failed: thread 'kline-backfill' died" in log
    assert ", 0 left unwritten" in stdout  # the queue was written before exit
