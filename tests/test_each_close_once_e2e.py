"""Issue 23 item 3 end to end: a daphne started on an empty database, a stream client already connected, then
the ingest starts (fake exchange -> real ingest -> Redis or the database -> real daphne -> client).

The ingest's start-up backfill stores the newest klines the exchange closed before it connected. On Binance a
client gets a close as it happens, never the history; here too: every close the client gets is one the exchange
sent on its stream, but for at most one, the backfill's newest (the newest close not yet seen), and each is dated
by its own close.
"""

from __future__ import annotations

from pathlib import Path

import pymongo
import pytest

from klines.testing.servers import RedisServer, daphne, free_port, stop_process
from tests.fake_exchange import ExchangeThread
from tests.helpers import Ingest, StreamEvents, ingest_env, make_exchange, wait_until

pytestmark = pytest.mark.e2e

SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def is_close(event: dict) -> bool:
    """A raw stream's close events (``x: true``), not its in-progress updates."""
    return event["k"]["x"]


@pytest.mark.parametrize("layer", ["redis", "database"])
def test_the_start_up_backfill_is_not_sent_as_live_closes(layer: str, secantus, database: str, tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis.log").start() if layer == "redis" else None
    exchange = make_exchange(SYMBOLS, speed=6.0)  # a 1m kline closes every 10 s
    try:
        with ExchangeThread(exchange) as thread:
            extra = {"KLINE_POLL_SECONDS": "0.5"} | ({"REDIS_URL": redis.url} if redis else {})
            env = ingest_env(secantus.uri, database, thread, SYMBOLS, **extra)
            port = free_port()
            server = daphne(port, env, tmp_path / "daphne.log")  # on an empty database
            ingest = None
            try:
                reader = StreamEvents(f"ws://127.0.0.1:{port}/market/ws/btcusdt@kline_1m", keep=is_close)
                ingest = Ingest(env, tmp_path).start()
                klines = pymongo.MongoClient(secantus.uri)[database]["klines"]
                wait_until(lambda: klines.count_documents({"symbol": "BTCUSDT"}) >= 11, timeout=60, what="history")
                live = lambda: {k.open_ms for k in exchange.closed_sent if k.symbol == "BTCUSDT"}  # noqa: E731
                wait_until(
                    lambda: len({e["k"]["t"] for e in reader.events} & live()) >= 2, timeout=60, what="two live closes"
                )
                reader.ws.close()
            finally:
                if ingest is not None:
                    ingest.stop()
                stop_process(server)
    finally:
        if redis is not None:
            redis.stop()
    opens = [e["k"]["t"] for e in reader.events]
    assert opens == sorted(set(opens)), "a close came twice or out of order"
    history = [t for t in opens if t not in live()]
    assert len(history) <= 1, f"{len(history)} stored klines sent as live closes"
    assert history == opens[:1] or not history  # only the newest close not yet seen, first
    assert all(e["E"] == e["k"]["T"] + 1 for e in reader.events), "a close dated by the relaying process's clock"
    assert "Traceback" not in (tmp_path / "daphne.log").read_text()
