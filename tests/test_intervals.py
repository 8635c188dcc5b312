"""Several intervals: the real ingest records every (symbol, interval), klines_status and /healthz check each."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pymongo
import pytest

from klines.testing.servers import SecantusServer, manage
from tests.fake_exchange import ExchangeThread
from tests.helpers import Ingest, complete_through, index_of, ingest_env, make_exchange, stored, wait_until

pytestmark = pytest.mark.e2e
SYMBOLS = ["btcusdt", "ethusdt"]
INTERVALS = ("1m", "5m")


def test_every_symbol_is_recorded_at_every_interval(secantus: SecantusServer, database: str, tmp_path: Path) -> None:
    fake = make_exchange(SYMBOLS, intervals=INTERVALS)
    klines = pymongo.MongoClient(secantus.uri, tz_aware=True)[database]["klines"]
    with ExchangeThread(fake) as exchange:
        env = ingest_env(secantus.uri, database, exchange, SYMBOLS, KLINE_INTERVALS=",".join(INTERVALS))
        ingest = Ingest(env, tmp_path).start()
        try:
            # Two 5m closes from the stream on top of the start-up history.
            target = {interval: fake.last_closed_index(interval) + 2 for interval in INTERVALS}
            wait_until(
                lambda: all(complete_through(klines, s, target[i], interval=i) for s in SYMBOLS for i in INTERVALS),
                timeout=60,
                what="every symbol at every interval stored without gaps",
            )
        finally:
            ingest.stop()
    assert "Traceback" not in ingest.log, ingest.log[-3000:]
    for symbol in SYMBOLS:
        for interval in INTERVALS:
            klines_stored = stored(klines, symbol, interval)
            first, last = index_of(klines_stored[0]), index_of(klines_stored[-1])
            assert klines_stored == fake.truth(symbol.upper(), first, last, interval), f"{symbol} {interval}"
    newest_5m = stored(klines, "btcusdt", "5m")[-1].close_time
    status = manage(
        ["klines_status", "--until", newest_5m.isoformat(), "--grace", "0"],
        env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output, _ = status.communicate(timeout=60)
    assert status.returncode == 0, output
    assert "no gaps in 2 symbols x 2 intervals" in output
    assert "BTCUSDT 5m:" in output and "ETHUSDT 1m:" in output
