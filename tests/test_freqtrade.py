"""freqtrade's ``download-data`` with its default futures candle types, against the mirror (issue 22, part 4).

A simulated exchange -> the real ``backfill_klines`` and ingest (klines, mark-price klines and funding rates)
-> SecantusDB -> a real daphne; then freqtrade 2026.9, in its own venv, pointed at the mirror by its config
alone, downloads 1m futures candles, 1h mark-price candles and funding rates. It must exit 0 and its files
must hold the record's values, row for row.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pymongo
import pytest

from klines.simexchange.server import SimulatedExchange
from klines.testing.servers import ROOT, SecantusServer, daphne, free_port, manage, stop_process
from tests.fake_exchange import ExchangeThread
from tests.helpers import Ingest, ingest_env, migrate, wait_until

FREQTRADE = Path(os.environ.get("BINANCEWS_FREQTRADE") or ROOT / ".venv-freqtrade" / "bin" / "freqtrade")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not FREQTRADE.exists(),
        reason=f"freqtrade not found at {FREQTRADE}: install requirements-freqtrade.txt into .venv-freqtrade "
        "or set BINANCEWS_FREQTRADE",
    ),
]
SYMBOLS = ["BTCUSDT", "ETHUSDT"]
DAYS = 2  # freqtrade's --days; 1m klines are backfilled from midnight DAYS days ago
HOURLY_DAYS = 40  # 1h klines (and so mark-price klines and funding rates) reach this far back: > 100 fundings
HOUR_MS = 3_600_000
# Reads a feather file with freqtrade's own pandas: rows of [ms, values...], floats as Python writes them.
READ_FEATHER = (
    "import json, sys, pandas as pd\n"
    "df = pd.read_feather(sys.argv[1])\n"
    "df['date'] = (df['date'] - pd.Timestamp(0, tz='UTC')) // pd.Timedelta('1ms')\n"
    "print(json.dumps({'columns': list(df.columns), 'rows': df.values.tolist()}))\n"
)


@dataclass
class Record:
    url: str
    db: pymongo.database.Database
    exchange: SimulatedExchange


def _oldest(collection: pymongo.collection.Collection, query: dict[str, Any], field: str) -> datetime | None:
    row = collection.find_one(query, sort=[(field, 1)])
    return None if row is None else row[field].replace(tzinfo=UTC)


def _newest(collection: pymongo.collection.Collection, query: dict[str, Any], field: str) -> datetime | None:
    row = collection.find_one(query, sort=[(field, -1)])
    return None if row is None else row[field].replace(tzinfo=UTC)


def derivatives_caught_up(db: pymongo.database.Database) -> bool:
    """Each symbol's mark-price klines and funding rates reach from its oldest kline to now."""
    now = datetime.now(UTC)
    for symbol in SYMBOLS:
        for interval in ("1m", "1h"):
            oldest = _oldest(db.klines, {"symbol": symbol, "interval": interval}, "open_time")
            query = {"symbol": symbol, "interval": interval}
            if oldest is None or _oldest(db.mark_price_klines, query, "open_time") != oldest:
                return False
            newest = _newest(db.mark_price_klines, query, "open_time")
            closed = now - 2 * (timedelta(hours=1) if interval == "1h" else timedelta(minutes=1))
            if newest is None or newest < closed - timedelta(minutes=2):
                return False
        first, last = (
            _oldest(db.funding_rates, {"symbol": symbol}, "funding_time"),
            _newest(db.funding_rates, {"symbol": symbol}, "funding_time"),
        )
        if first is None or first > oldest + timedelta(hours=8) or last < now - timedelta(hours=8, minutes=1):
            return False
    return True


def backfill(env: dict[str, str], interval: str, days: int) -> None:
    since = (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%d")
    args = ["backfill_klines", "--since", since, "--intervals", interval, "--quiet"]
    assert manage(args, env).wait(300) == 0


@pytest.fixture(scope="module")
def record(secantus: SecantusServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Record]:
    workdir = tmp_path_factory.mktemp("freqtrade")
    database = f"freqtrade_{uuid.uuid4().hex[:8]}"
    migrate(secantus.uri, database)
    exchange = SimulatedExchange(symbols=SYMBOLS, intervals=("1m", "1h"))
    with ExchangeThread(exchange) as thread:
        env = ingest_env(
            secantus.uri,
            database,
            thread,
            SYMBOLS,
            KLINE_INTERVALS="1m,1h",
            BINANCE_REST_WEIGHT_PER_MINUTE="1000000",
            BINANCE_ARCHIVE_URL=thread.rest_url,
        )
        del env["KLINE_INTERVAL"]
        backfill(env, "1m", DAYS)
        backfill(env, "1h", HOURLY_DAYS)
        ingest = Ingest(env, workdir).start()
        port = free_port()
        server = daphne(port, env, workdir / "daphne.log")
        db = pymongo.MongoClient(secantus.uri)[database]
        try:
            wait_until(lambda: derivatives_caught_up(db), timeout=180, what="mark prices and funding recorded", every=1)
            yield Record(f"http://127.0.0.1:{port}", db, exchange)
        finally:
            stop_process(server)
            ingest.stop()
    assert "Traceback" not in ingest.log
    pymongo.MongoClient(secantus.uri).drop_database(database)


def freqtrade_config(mirror: str, path: Path) -> Path:
    """The README's config block (Use it as a Binance mirror > freqtrade), pointed at ``mirror``."""
    urls = {"api": {"fapiPublic": f"{mirror}/fapi/v1"}}
    ccxt = {"urls": urls, "options": {"fetchMarkets": {"types": ["linear"]}}}
    config = {
        "trading_mode": "futures",
        "margin_mode": "isolated",
        "stake_currency": "USDT",
        "dry_run": True,
        "exchange": {
            "name": "binance",
            "only_from_ccxt": True,
            "ccxt_config": ccxt,
            "ccxt_async_config": ccxt,
            "pair_whitelist": ["BTC/USDT:USDT"],
            "_ft_has_params": {"ohlcv_partial_candle": False},  # the mirror's newest kline is closed: keep it
        },
        "pairlists": [{"method": "StaticPairList"}],
    }
    path.write_text(json.dumps(config))
    return path


def read_feather(path: Path) -> dict[str, Any]:
    python = FREQTRADE.parent / "python"
    out = subprocess.run([python, "-c", READ_FEATHER, path], capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout)


def as_float(value: Any) -> float:
    """A stored Decimal128 (or the 0 of a mark-price kline's volume) as freqtrade's float."""
    return float(value.to_decimal()) if hasattr(value, "to_decimal") else float(value)


def ms(moment: datetime) -> int:
    return round(moment.replace(tzinfo=UTC).timestamp() * 1000)


def stored_candles(db: pymongo.database.Database, collection: str, interval: str, first_ms: int, last_ms: int) -> list:
    """``[ms, open, high, low, close, volume]`` of BTCUSDT's stored rows opened in the range (mark prices: volume 0)."""
    between = {
        "$gte": datetime.fromtimestamp(first_ms / 1000, UTC),
        "$lte": datetime.fromtimestamp(last_ms / 1000, UTC),
    }
    query = {"symbol": "BTCUSDT", "interval": interval, "open_time": between}
    return [
        [ms(d["open_time"]), *(as_float(d[f]) for f in ("open", "high", "low", "close")), as_float(d.get("volume", 0))]
        for d in db[collection].find(query, sort=[("open_time", 1)])
    ]


def test_download_data_with_default_candle_types_writes_the_record(record: Record, tmp_path: Path) -> None:
    config = freqtrade_config(record.url, tmp_path / "config.json")
    (tmp_path / "user_data").mkdir()
    args = ["download-data", "--config", config, "--userdir", tmp_path / "user_data", "--datadir", tmp_path / "data"]
    args += ["--exchange", "binance", "--trading-mode", "futures", "--pairs", "BTC/USDT:USDT"]
    args += ["--timeframes", "1m", "--days", str(DAYS)]
    newest = {
        collection: ms(_newest(record.db[collection], {"symbol": "BTCUSDT", "interval": interval}, "open_time"))
        for collection, interval in (("klines", "1m"), ("mark_price_klines", "1h"))
    }
    started = time.monotonic()
    done = subprocess.run([FREQTRADE, *args], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    print(f"freqtrade download-data: {time.monotonic() - started:.1f} s")
    files = tmp_path / "data" / "futures"
    # Candles: every row freqtrade wrote is the stored one, and none is missing in between.
    for name, collection, interval in (("1m-futures", "klines", "1m"), ("1h-mark", "mark_price_klines", "1h")):
        got = read_feather(files / f"BTC_USDT_USDT-{name}.feather")
        assert got["columns"] == ["date", "open", "high", "low", "close", "volume"], name
        rows = got["rows"]
        assert len(rows) >= DAYS * 24 * (60 if interval == "1m" else 1), name
        assert rows == stored_candles(record.db, collection, interval, rows[0][0], rows[-1][0]), name
        assert rows[-1][0] >= newest[collection], f"{name}: the newest closed kline is kept"
    # Funding rates: (time, rate) as stored, every one in the range.
    got = read_feather(files / "BTC_USDT_USDT-1h-funding_rate.feather")
    assert got["columns"] == ["date", "funding_rate"]
    rows = got["rows"]
    assert len(rows) >= DAYS * 3
    stored = record.db.funding_rates.find({"symbol": "BTCUSDT"}, sort=[("funding_time", 1)])
    expected = [[ms(d["funding_time"]), as_float(d["funding_rate"])] for d in stored]
    assert rows == [row for row in expected if rows[0][0] <= row[0] <= rows[-1][0]]
