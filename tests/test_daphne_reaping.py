"""A closed connection's objects are freed by reference counting, not left to the cycle collector.

daphne used to keep each closed connection in reference cycles (its protocol,
twisted's channel and transport, the application's sender task) that only a
full garbage collection freed: the connect storm's tail (bench/README.md).
"""

from __future__ import annotations

import asyncio
import gc
import json
import signal
import subprocess
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
import websocket
from daphne.server import Server  # already loaded in every Django process: "daphne" is an installed app

from binancews.daphne_patches import reaping as daphne_reaping
from klines.serving.outbox import Outbox
from klines.testing.servers import ROOT, SecantusServer, free_port, service_env, stop_process, wait_for_port
from tests.helpers import SYMBOLS, store_klines, wait_until

# daphne's command line in a process whose cyclic garbage collector never runs; SIGUSR1 writes the number
# of live objects per type to $LIVE_OBJECTS (daphne's reactor thread runs the handler between bytecodes).
DAPHNE_WITHOUT_COLLECTOR = """
import collections, gc, json, os, signal
gc.disable()
def count_live_objects(*_):
    counts = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
    with open(os.environ["LIVE_OBJECTS"] + ".tmp", "w") as out:
        json.dump(counts, out)
    os.replace(os.environ["LIVE_OBJECTS"] + ".tmp", os.environ["LIVE_OBJECTS"])
signal.signal(signal.SIGUSR1, count_live_objects)
from daphne.cli import CommandLineInterface
CommandLineInterface.entrypoint()
"""
CONNECTION_TYPES = (
    "WebSocketProtocol",
    "WebRequest",
    "HTTPChannel",
    "Outbox",
    "KlineFeedConsumer",
    "FrameQueue",
    "KlineStreamConsumer",
)


class Daphne:
    """Our daphne without the cycle collector, asked for its live objects by signal."""

    def __init__(self, env: dict[str, str], tmp_path: Path) -> None:
        self.port = free_port()
        self.counts = tmp_path / "live-objects.json"
        self.log = open(tmp_path / "daphne.log", "ab")  # noqa: SIM115
        argv = [sys.executable, "-c", DAPHNE_WITHOUT_COLLECTOR, "-b", "127.0.0.1", "-p", str(self.port)]
        self.process = subprocess.Popen(
            [*argv, "binancews.asgi:application"],
            cwd=ROOT,
            env={**env, "LIVE_OBJECTS": str(self.counts)},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, process=self.process)

    def live(self) -> dict[str, int]:
        """The number of live objects of each of :data:`CONNECTION_TYPES` in the daphne process."""
        self.counts.unlink(missing_ok=True)
        self.process.send_signal(signal.SIGUSR1)
        wait_until(self.counts.exists, timeout=10, what="daphne's object counts")
        counts = json.loads(self.counts.read_text())
        return {name: counts.get(name, 0) for name in CONNECTION_TYPES}

    def stop(self) -> None:
        stop_process(self.process)
        self.log.close()


@pytest.fixture
def daphne_without_collector(secantus: SecantusServer, database: str, tmp_path: Path) -> Iterator[Daphne]:
    env = service_env(secantus.uri, database)
    store_klines(env, {symbol: range(11) for symbol in SYMBOLS})
    server = Daphne(env, tmp_path)
    yield server
    server.stop()


def read_and_close(port: int, path: str, frames: int) -> list[str]:
    ws = websocket.create_connection(f"ws://127.0.0.1:{port}{path}", timeout=30)
    try:
        return [ws.recv() for _ in range(frames)]
    finally:
        ws.close()


@pytest.mark.e2e
@pytest.mark.parametrize(("path", "frames"), [("/", 5), ("/market/stream?streams=btcusdt@kline_1m", 0)])
def test_closed_connections_are_freed_without_the_cycle_collector(
    daphne_without_collector: Daphne, path: str, frames: int
) -> None:
    server = daphne_without_collector
    read_and_close(server.port, path, frames)  # the first connection loads what every later one shares
    wait_until(lambda: server.live()["WebSocketProtocol"] == 0, timeout=10, what="the first connection freed")
    before = server.live()

    for _ in range(20):
        assert len(read_and_close(server.port, path, frames)) == frames

    # Freed as each closes; daphne's own reaper (once a second) alone would leave all 20 in cycles.
    wait_until(lambda: server.live() == before, timeout=10, what=f"live objects back to {before}")


async def test_a_stopped_outbox_is_freed_by_reference_counting() -> None:
    async def send(frame: str) -> None:
        return None

    async def too_slow(owed: int) -> None:
        return None

    outbox = Outbox(lambda symbol: symbol, lambda symbol: None, send, max_owed=1 << 20, too_slow=too_slow)
    outbox.start()
    await asyncio.sleep(0)  # its task waits for frames
    freed = weakref.ref(outbox)
    enabled = gc.isenabled()
    gc.disable()
    try:
        outbox.stop()  # the connection closed
        del outbox
        for _ in range(3):
            await asyncio.sleep(0)  # the cancelled task finishes
        assert freed() is None
    finally:
        if enabled:
            gc.enable()


def test_daphne_is_not_patched_without_daphne(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, daphne_reaping.SERVER_MODULE, raising=False)
    assert not daphne_reaping.install()
    assert daphne_reaping.SERVER_MODULE not in sys.modules


def test_the_web_process_collects_young_garbage_less_often_and_never_rescans_start_up() -> None:
    code = "import gc, binancews.asgi; print(gc.get_threshold()[0], gc.get_freeze_count() > 0)"
    env = service_env("mongodb://127.0.0.1:9/?directConnection=true", "binancews")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["7000", "True"], result.stderr


async def test_a_closed_connection_is_reaped_once_its_application_finishes_and_its_failure_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = Server(application=None, endpoints=["tcp:port=0:interface=127.0.0.1"])
    server.connections = {}
    protocol = object()  # a connection, as daphne's map keys it
    instance = asyncio.get_running_loop().create_future()
    server.connections[protocol] = {"connected": 0.0, "application_instance": instance}

    assert not daphne_reaping.reap(server, protocol)  # open
    server.connections[protocol]["disconnected"] = 1.0
    assert not daphne_reaping.reap(server, protocol)  # closed, its application still running: the checker's case
    instance.set_exception(ValueError("boom"))
    assert daphne_reaping.reap(server, protocol)
    assert protocol not in server.connections
    assert [r.getMessage() for r in caplog.records if r.name == "daphne.server"] == [
        "Exception inside application: boom"
    ]
