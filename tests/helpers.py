"""The tests' helpers: ground-truth klines, the ingest as a subprocess, waiting, and the ground-truth check.

Every reliability scenario ends with :func:`assert_ground_truth`: the stored
klines of every symbol are exactly the exchange's ground truth — contiguous,
no duplicates, the same fields with the same decimal digits — and
``klines_status`` (the real command, as a subprocess) reports no gaps.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import websocket
from bson.decimal128 import Decimal128
from channels_redis.core import RedisChannelLayer
from pymongo.collection import Collection
from pymongo.database import Database

from klines.binance.intervals import interval_ms
from klines.binance.parse import ClosedKline, datetime_to_ms, ms_to_datetime, parse_rest_row
from klines.events import GROUP, kline_to_message
from klines.simexchange.series import KlineSeries
from klines.testing.servers import TEST_SOURCE, manage, service_env, stop_process, wait_until
from klines.window import HISTORY
from tests.fake_exchange import ExchangeThread, FaultyExchange

# The seed's five coins, in payload order (the default KLINE_SYMBOLS), and the zone the tests run in.
SYMBOLS = ["BTCUSDT", "BNBUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]
ZONE = ZoneInfo("UTC")

SERIES = KlineSeries(interval="1m", interval_ms=60_000)
BASE_INDEX = 29_401_080  # 2025-11-25 10:00 UTC in minutes since the epoch


def closed_kline(symbol: str = "BTCUSDT", offset: int = 0, interval: str = "1m") -> ClosedKline:
    """The ground-truth kline ``offset`` intervals after 2025-11-25 10:00 UTC (an hour's boundary)."""
    if interval == "1m":
        row = SERIES.kline(symbol, BASE_INDEX + offset).rest_row()
    else:
        length = interval_ms(interval)
        series = KlineSeries(interval=interval, interval_ms=length)
        row = series.kline(symbol, BASE_INDEX * INTERVAL_MS // length + offset).rest_row()
    return parse_rest_row(row, symbol=symbol, interval=interval)


def offset_after_now(minutes: int = 60) -> int:
    """The :func:`closed_kline` offset of a kline ``minutes`` after now: newer than anything a fake exchange sent."""
    return int(time.time()) // 60 - BASE_INDEX + minutes


async def publish_closes_until(redis_url: str, symbol: str, done: Callable[[], bool], *, first: int, limit: int) -> int:
    """Publish closes of ``symbol`` from offset ``first`` on, as the ingest would, until ``done()``; return how many.

    ``done`` is asked every 1,000 closes (a client that stops reading is given up
    only once the kernel's buffers are full: a few MB).
    """
    layer = RedisChannelLayer(hosts=[redis_url], capacity=10_000)  # as the ingest has it
    for count in range(1, limit + 1):
        await layer.group_send(GROUP, kline_to_message(closed_kline(symbol, first + count - 1)))
        if count % 1000 == 0 and done():
            return count
    raise AssertionError(f"the slow client was not closed after {limit} frames")


INTERVAL_MS = 60_000
SPEED = 240.0  # a 1m kline closes every 0.25 s
FIELDS = tuple(ClosedKline.__dataclass_fields__)


def make_exchange(symbols: list[str], **faults: Any) -> FaultyExchange:
    """A fake exchange whose clock starts mid-minute, ten hours ago (inside klines_status' 24 h window)."""
    start_ms = (int(time.time() * 1000) // INTERVAL_MS - 600) * INTERVAL_MS + INTERVAL_MS // 4
    options: dict[str, Any] = {"interval": "1m", "speed": SPEED, "update_seconds": 0.1, "start_ms": start_ms}
    return FaultyExchange(symbols=symbols, **{**options, **faults})


class Ingest:
    """The ``ingest_klines`` command as a subprocess, its output in files under ``workdir``."""

    def __init__(self, env: dict[str, str], workdir: Path, name: str = "ingest", args: tuple[str, ...] = ()) -> None:
        self.out_path = workdir / f"{name}.out"
        self.err_path = workdir / f"{name}.err"
        self.env = env
        self.args = args  # options of ingest_klines, e.g. ("-v", "2")
        self.process: subprocess.Popen | None = None

    def start(self) -> Ingest:
        with open(self.out_path, "ab") as out, open(self.err_path, "ab") as err:
            self.process = manage(["ingest_klines", *self.args], self.env, stdout=out, stderr=err)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> tuple[int, float]:
        """Signal the command; return its exit code and how long it took to exit."""
        assert self.process is not None
        started = time.monotonic()
        code = stop_process(self.process, sig=sig, timeout=timeout)
        return code, time.monotonic() - started

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def log(self) -> str:
        return self.err_path.read_text(errors="replace")


def ingest_env(mongo_uri: str, database: str, exchange: ExchangeThread, symbols: list[str], **extra: str) -> dict:
    settings = {
        "KLINE_SYMBOLS": ",".join(symbols),
        "KLINE_INTERVAL": "1m",
        "BINANCE_WS_URL": exchange.ws_url,
        "BINANCE_REST_URL": exchange.rest_url,
        "KLINE_SOURCE": TEST_SOURCE,
        "KLINE_SILENCE_SECONDS": "1.5",
        "KLINE_RECONNECT_MAX_SECONDS": "0.5",
        "KLINE_STATS_SECONDS": "1",
        "KLINES_LOG_LEVEL": "INFO",
    }
    return service_env(mongo_uri, database, **{**settings, **extra})


def empty_record(database: Database) -> Collection:
    """Forget every kline and the exchange that fed them (a new fake exchange, on another port, may claim it)."""
    database["exchange_source"].delete_many({})
    klines = database["klines"]
    klines.delete_many({})
    return klines


def stored(collection: Collection, symbol: str, interval: str = "1m") -> list[ClosedKline]:
    rows = collection.find({"symbol": symbol.upper(), "interval": interval}).sort("open_time", 1)
    return [ClosedKline(**{name: _value(row[name]) for name in FIELDS}) for row in rows]


def _value(value: Any) -> Any:
    if isinstance(value, Decimal128):
        return value.to_decimal()
    if hasattr(value, "tzinfo") and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def index_of(kline: ClosedKline) -> int:
    return datetime_to_ms(kline.open_time) // interval_ms(kline.interval)


def complete_through(
    collection: Collection, symbol: str, index: int, *, at_least: int = HISTORY, interval: str = "1m"
) -> bool:
    """``symbol`` has a contiguous run of at least ``at_least`` stored klines reaching ``index``."""
    indexes = [index_of(k) for k in stored(collection, symbol, interval)]
    contiguous = bool(indexes) and indexes == list(range(indexes[0], indexes[-1] + 1))
    return contiguous and len(indexes) >= at_least and indexes[-1] >= index


def wait_for_complete(collection: Collection, symbols: list[str], index: int, timeout: float) -> None:
    """Wait until every symbol's stored klines are contiguous and reach ``index``."""
    wait_until(
        lambda: all(complete_through(collection, s, index) for s in symbols),
        timeout=timeout,
        what=f"every symbol stored without gaps through kline {index}",
    )


def assert_ground_truth(
    collection: Collection,
    exchange: FaultyExchange,
    symbols: list[str],
    *,
    through: int,
    env: dict[str, str],
) -> None:
    """Everything stored equals the ground truth: contiguous, at least :data:`HISTORY` klines, reaching ``through``.

    No open kline was stored, no kline twice, every field and decimal digit as the
    exchange has it; and ``klines_status`` (the real command) reports no gaps.
    """
    last_closed = exchange.last_closed_index()
    newest_common = last_closed
    for symbol in symbols:
        klines = stored(collection, symbol)
        assert len(klines) >= HISTORY, f"{symbol}: only {len(klines)} klines stored"
        first, last = index_of(klines[0]), index_of(klines[-1])
        assert through <= last <= last_closed, f"{symbol}: newest stored {last}, expected {through}..{last_closed}"
        truth = exchange.truth(symbol, first, last)
        assert [k.open_time for k in klines] == [k.open_time for k in truth], f"{symbol}: gaps or duplicates"
        assert klines == truth, f"{symbol}: stored values differ from the exchange's"
        assert [_digits(k) for k in klines] == [_digits(k) for k in truth], f"{symbol}: decimal digits differ"
        newest_common = min(newest_common, last)
    # klines_status checks up to the newest kline every symbol has. Not ``through``: on a
    # busy machine the start-up backfill can reach a symbol only after ``through`` closed,
    # and then (on an empty database) that symbol's record rightly starts after it.
    status = manage(
        [
            "klines_status",
            "--symbols",
            ",".join(symbols),
            "--until",
            ms_to_datetime((newest_common + 1) * INTERVAL_MS).isoformat(),
            "--grace",
            "0",
        ],
        env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output, _ = status.communicate(timeout=30)
    assert status.returncode == 0, output
    assert f"no gaps in {len(symbols)} symbols" in output


def _digits(kline: ClosedKline) -> tuple[str, ...]:
    return tuple(str(getattr(kline, name)) for name in FIELDS)


def migrate(mongo_uri: str, database: str) -> None:
    """Apply the migrations to ``database`` with the real ``manage.py migrate``."""
    assert manage(["migrate", "--noinput", "-v0"], service_env(mongo_uri, database)).wait(120) == 0


def store_klines(
    env: Mapping[str, str], klines: Mapping[str, Iterable[int]], *, batch: bool = False, interval: str = "1m"
) -> None:
    """Store ground-truth klines (:func:`closed_kline`) in another process, as the ingest does: one by one with
    ``save_kline``, or with ``batch`` in one ``save_klines`` (for long histories)."""
    pairs = [(symbol, offset) for symbol, offsets in klines.items() for offset in offsets]
    store = (
        "assert len(save_klines([closed_kline(s, o, interval) for s, o in pairs])) == len(pairs)\n"
        if batch
        else "for s, o in pairs:\n    assert save_kline(closed_kline(s, o, interval)) is not None\n"
    )
    code = (
        "from klines.store.writes import save_kline, save_klines\n"
        "from tests.helpers import closed_kline\n"
        f"pairs = {pairs!r}\ninterval = {interval!r}\n" + store
    )
    process = manage(["shell", "--no-imports", "-c", code], env)
    if process.wait(120) != 0:
        raise RuntimeError(f"storing klines failed (exit {process.returncode})")


class Reader:
    """A websocket client of ``/`` that records every frame it receives, in a thread."""

    def __init__(self, port: int) -> None:
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}/", timeout=30)
        self.frames: list[tuple[float, dict]] = []
        self.closed_with: int | None = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while True:
            try:
                opcode, data = self.ws.recv_data()
            except (websocket.WebSocketException, OSError):
                return
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                self.closed_with = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
                return
            self.frames.append((time.time(), json.loads(data)))

    def coin_frames(self, coin: str) -> list[dict]:
        return [frame for _, frame in list(self.frames) if frame["coin"] == coin]

    def close(self) -> None:
        self.ws.close()
        self.thread.join(5)


async def connected():
    """A websocket client of the ASGI application on ``/`` that has read the five frames sent on connect."""
    from channels.testing import WebsocketCommunicator

    from binancews.asgi import application

    communicator = WebsocketCommunicator(application, "/")
    assert (await communicator.connect())[0]
    for _ in range(5):
        await communicator.receive_from(timeout=10)
    return communicator


class StreamEvents:
    """A raw client of a Binance-protocol stream URL, reading in a thread: every event it keeps, in order."""

    def __init__(self, url: str, keep: Callable[[dict], bool] = lambda event: True) -> None:
        self.ws = websocket.create_connection(url, timeout=30)
        self.events: list[dict] = []
        self._keep = keep
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                event = json.loads(self.ws.recv())
            except (websocket.WebSocketException, OSError, ValueError):
                return
            if self._keep(event):
                self.events.append(event)
