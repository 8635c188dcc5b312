"""The replay (``/market/replay/stream``) against a real daphne on SecantusDB, read by websocket-client."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pymongo
import pytest
import websocket

from klines.api.stream_events import combined_frame, encode, kline_event
from klines.binance.parse import datetime_to_ms
from klines.testing.servers import daphne, free_port, manage, service_env, stop_process
from tests.helpers import closed_kline, migrate, store_klines, wait_until

pytestmark = pytest.mark.e2e

LONG = 15_000  # klines of BTCUSDT and of ETHUSDT at 1m: ~13 MB of frames, far more than the replay may buffer
HOLE = range(5, 8)  # ETHUSDT has no klines at these offsets
FIVE_MINUTES = range(0, 6)  # BTCUSDT at 5m


class Site:
    def __init__(self, port: int, pid: int, env: dict[str, str]) -> None:
        self.port, self.pid, self.env = port, pid, env

    def url(self, streams: str, first: int, last: int, interval: str = "1m", **extra: str) -> str:
        start = datetime_to_ms(closed_kline("BTCUSDT", first, interval).open_time)
        end = datetime_to_ms(closed_kline("BTCUSDT", last, interval).open_time)
        query = "&".join(f"{k}={v}" for k, v in {"startTime": start, "endTime": end, "speed": 0, **extra}.items())
        return f"ws://127.0.0.1:{self.port}/market/replay/stream?streams={streams}&{query}"

    def connect(self, url: str, **options: object) -> websocket.WebSocket:
        return websocket.create_connection(url, timeout=30, **options)


@pytest.fixture(scope="module")
def site(secantus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    database = f"replay_{uuid.uuid4().hex[:8]}"
    migrate(secantus.uri, database)
    env = service_env(secantus.uri, database, KLINE_INTERVALS="1m,5m")
    store_long_history(env)
    store_klines(env, {"BTCUSDT": FIVE_MINUTES}, batch=True, interval="5m")
    port = free_port()
    log = tmp_path_factory.mktemp("replay") / "daphne.log"
    server = daphne(port, env, log)
    yield Site(port, server.pid, env)
    stop_process(server)
    pymongo.MongoClient(secantus.uri).drop_database(database)
    assert "Traceback" not in log.read_text()


def store_long_history(env: dict[str, str]) -> None:
    """:data:`LONG` klines of BTCUSDT and ETHUSDT (but :data:`HOLE`), in batches (too many for a command line)."""
    code = (
        "from klines.store.writes import save_klines\n"
        "from tests.helpers import closed_kline\n"
        f"for first in range(0, {LONG}, 5000):\n"
        "    for symbol in ('BTCUSDT', 'ETHUSDT'):\n"
        f"        offsets = range(first, min(first + 5000, {LONG}))\n"
        f"        offsets = [o for o in offsets if symbol == 'BTCUSDT' or o not in {HOLE!r}]\n"
        "        save_klines([closed_kline(symbol, o) for o in offsets])\n"
    )
    assert manage(["shell", "--no-imports", "-c", code], env).wait(300) == 0


def read_all(ws: websocket.WebSocket) -> tuple[list[tuple[float, str]], int, str]:
    """Every text frame (with its arrival time) until the close frame; the close code and reason."""
    frames: list[tuple[float, str]] = []
    while True:
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            ws.close()
            return frames, int.from_bytes(data[:2], "big"), data[2:].decode()
        if opcode == websocket.ABNF.OPCODE_TEXT:  # not daphne's pings
            frames.append((time.monotonic(), data.decode()))


def expected_frame(stream: str, offset: int) -> str:
    symbol, interval = stream.split("@kline_")
    kline = closed_kline(symbol.upper(), offset, interval)
    return combined_frame(
        stream, encode(kline_event(kline, closed=True, event_ms=datetime_to_ms(kline.close_time) + 1))
    )


def test_streams_are_merged_in_close_time_order_and_end_with_a_normal_close(site: Site) -> None:
    """The events are byte for byte the live stream's closes; a 5m close comes after the 1m closes before it."""
    url = site.url("ethusdt@kline_1m/btcusdt@kline_5m/btcusdt@kline_1m", 0, 11)
    frames, code, reason = read_all(site.connect(url))
    expected = sorted(
        [(closed_kline("ETHUSDT", o).close_time, 0, o, "ethusdt@kline_1m") for o in range(12) if o not in HOLE]
        + [(closed_kline("BTCUSDT", o, "5m").close_time, 1, o, "btcusdt@kline_5m") for o in range(3)]
        + [(closed_kline("BTCUSDT", o).close_time, 2, o, "btcusdt@kline_1m") for o in range(12)]
    )
    assert [text for _, text in frames] == [expected_frame(stream, o) for _, _, o, stream in expected]
    assert (code, reason) == (1000, "replay complete")
    assert all(json.loads(text)["data"]["k"]["x"] is True for _, text in frames)


def test_a_client_that_reads_late_still_gets_every_event_before_the_close(site: Site) -> None:
    """daphne used to abort (TCP RST) a connection not answering its close within 1 s: the unread tail was lost."""
    ws = site.connect(site.url("btcusdt@kline_1m/ethusdt@kline_1m", 0, 1999))
    time.sleep(2.5)  # the client is busy: the replay is all sent (or buffered) and closed meanwhile
    frames, code, reason = read_all(ws)
    assert (len(frames), code, reason) == (2 * 2000 - len(HOLE), 1000, "replay complete")


def test_a_range_with_nothing_stored_closes_at_once(site: Site) -> None:
    frames, code, reason = read_all(site.connect(site.url("btcusdt@kline_1m", LONG + 10, LONG + 20)))
    assert (frames, code, reason) == ([], 1000, "replay complete")


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("streams=btcusdt@kline_1m&endTime=2", "startTime is required"),
        ("streams=btcusdt@kline_1m&startTime=5&endTime=5", "endTime must be after startTime"),
        ("streams=btcusdt@kline_1m&startTime=-5", "startTime must be a time in milliseconds"),
        ("streams=btcusdt@kline_1m&startTime=1&speed=-1", "speed must be a number from 0 to 100000"),
        ("streams=btcusdt@kline_1m&startTime=1&speed=fast", "speed must be a number"),
        ("streams=dogeusdt@kline_1m&startTime=1", "symbol DOGEUSDT is not recorded here"),
        ("streams=btcusdt@kline_1h&startTime=1", "interval 1h is not recorded here"),
        ("streams=btcusdt@aggTrade&startTime=1", "unsupported stream"),
        ("startTime=1", "streams is required"),
    ],
)
def test_invalid_parameters_are_refused_at_the_handshake_with_the_reason(site: Site, query: str, reason: str) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        site.connect(f"ws://127.0.0.1:{site.port}/market/replay/stream?{query}")
    assert refused.value.status_code == 400
    assert reason in str(refused.value)


def test_speed_60_sends_a_minute_of_klines_a_second(site: Site) -> None:
    """Eleven 1m closes of two streams at speed=60: ten seconds from the first to the last, each on time (5%)."""
    frames, code, _ = read_all(site.connect(site.url("btcusdt@kline_1m/ethusdt@kline_1m", 20, 30, speed="60")))
    assert code == 1000 and len(frames) == 22
    first = frames[0][0]
    offsets = [frame_time - first for frame_time, _ in frames]
    assert abs(offsets[-1] - 10.0) <= 0.5, offsets
    for index, offset in enumerate(offsets):  # the two streams' closes of one minute come together
        assert abs(offset - index // 2) <= 0.5, offsets


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def _idle(process: psutil.Process) -> bool:
    """Whether the process spent under 5% of a core in the next half second (a replay waiting on its client;
    measured: 0 to 10 ms, against 100 ms and more while it sends)."""
    before = _cpu_seconds(process)
    time.sleep(0.5)
    return _cpu_seconds(process) - before < 0.025


def test_speed_0_waits_for_a_slow_reader_instead_of_buffering_the_replay(site: Site) -> None:
    """A client that stops reading: daphne stops sending and its memory stays flat (not ~13 MB of frames)."""
    server = psutil.Process(site.pid)
    read_all(site.connect(site.url("btcusdt@kline_1m/ethusdt@kline_1m", 0, 2000)))  # warm up the code and allocator
    baseline = server.memory_info().rss
    url = site.url("btcusdt@kline_1m/ethusdt@kline_1m", 0, LONG)
    ws = site.connect(url)
    ws.recv()
    wait_until(lambda: _idle(server), timeout=60, what="daphne to stop sending to a client that reads nothing")
    grown = server.memory_info().rss - baseline
    frames, code, reason = read_all(ws)
    assert (code, reason) == (1000, "replay complete")
    assert len(frames) + 1 == 2 * LONG - len(HOLE)
    assert grown < 4 * 1024 * 1024, f"daphne grew {grown / 2**20:.1f} MiB while the client read nothing"


def test_a_hundred_clients_each_get_the_whole_replay(site: Site) -> None:
    url = site.url("btcusdt@kline_1m/ethusdt@kline_1m", 100, 299)
    expected = [
        expected_frame(stream, o) for o in range(100, 300) for stream in ("btcusdt@kline_1m", "ethusdt@kline_1m")
    ]
    results: list[tuple[list[str], int, str]] = []
    clients = [site.connect(url) for _ in range(100)]
    started = time.monotonic()

    def read(ws: websocket.WebSocket) -> None:
        frames, code, reason = read_all(ws)
        results.append(([text for _, text in frames], code, reason))

    threads = [threading.Thread(target=read, args=(ws,)) for ws in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    elapsed = time.monotonic() - started
    assert len(results) == 100
    assert all(result == (expected, 1000, "replay complete") for result in results)
    print(f"replay at speed=0 to 100 clients: {100 * len(expected) / elapsed:.0f} events/s in all")


def test_replays_count_against_ws_max_connections(site: Site, tmp_path: Path) -> None:
    """A process takes no more replays than WS_MAX_CONNECTIONS: one more is closed with 1013, and a place
    freed by a replay that ended is taken again."""
    port = free_port()
    server = daphne(port, {**site.env, "WS_MAX_CONNECTIONS": "1"}, tmp_path / "daphne.log")
    full = Site(port, server.pid, site.env)
    try:
        slow = full.connect(full.url("btcusdt@kline_1m", 0, 30, speed="1"))  # half an hour at speed 1
        assert json.loads(slow.recv())["stream"] == "btcusdt@kline_1m"
        _frames, code, reason = read_all(full.connect(full.url("btcusdt@kline_1m", 0, 3)))
        assert (code, reason) == (1013, "server full, try again later")
        slow.close()
        wait_until(
            lambda: read_all(full.connect(full.url("btcusdt@kline_1m", 0, 3)))[1:] == (1000, "replay complete"),
            timeout=30,
            what="the freed place taken",
        )
    finally:
        stop_process(server)
