"""What ``ingest_klines`` prints: a stats line per KLINE_STATS_SECONDS, a line per stored kline only at ``-v 2``."""

from __future__ import annotations

import re

import pymongo
import pytest

from klines.testing.servers import SecantusServer
from tests.fake_exchange import ExchangeThread
from tests.helpers import Ingest, empty_record, ingest_env, make_exchange, migrate, wait_until

SYMBOLS = ["btcusdt", "ethusdt", "bnbusdt"]
DATABASE = "ingest_output"
STATS = re.compile(r"stats: \d+ messages, (\d+) klines stored")


def kline_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("stored ")]


@pytest.mark.e2e
@pytest.mark.parametrize("verbosity", [1, 2])
def test_stored_klines_are_summed_up_per_interval_and_listed_only_at_verbosity_2(
    secantus: SecantusServer, tmp_path, verbosity: int
) -> None:
    migrate(secantus.uri, DATABASE)
    client = pymongo.MongoClient(secantus.uri)
    klines = empty_record(client[DATABASE])
    with ExchangeThread(make_exchange(SYMBOLS)) as exchange:
        env = ingest_env(secantus.uri, DATABASE, exchange, SYMBOLS, KLINE_STATS_SECONDS="1")
        ingest = Ingest(env, tmp_path, args=("-v", str(verbosity))).start()
        try:
            # Two stats lines, the second counting the backfill and a close from the stream.
            wait_until(
                lambda: len(counts := [int(n) for n in STATS.findall(ingest.log)]) >= 2 and counts[-1] > len(SYMBOLS),
                timeout=60,
                what="two stats lines counting stored klines",
            )
        except BaseException:
            print(f"--- ingest log ---\n{ingest.log[-4000:]}")
            raise
        finally:
            code, _ = ingest.stop()
    assert code == 0
    stored = klines.count_documents({})
    client.close()
    assert stored > len(SYMBOLS)
    assert "stopped: " in ingest.stdout and f"{stored} klines stored" in ingest.stdout  # the summary at the end
    if verbosity == 2:
        assert len(kline_lines(ingest.stdout)) == stored  # one line each
    else:
        assert kline_lines(ingest.stdout) == []
        assert "a line per stored kline with -v 2" in ingest.stdout
        assert len(ingest.stdout.splitlines()) < 10  # start-up lines and the stopped line, however many klines
