"""simulate_exchange starts its clock just before a close, so `make simulate` shows a live update at once."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import websocket

from klines.simexchange.server import clock_closing_soon, start_clock
from klines.testing.servers import free_port, manage, service_env, stop_process, wait_for_port

MINUTE_MS = 60_000
A_MINUTE = 28_333_334 * MINUTE_MS  # a minute boundary in 2023


def test_the_clock_starts_five_seconds_before_the_interval_closes() -> None:
    now = A_MINUTE + 12_345
    start = clock_closing_soon(now, MINUTE_MS, speed=1)
    assert start >= now
    assert MINUTE_MS - start % MINUTE_MS == 5_000


def test_a_clock_already_closing_soon_is_kept() -> None:
    now = A_MINUTE + 57_000  # 3 s before the close
    assert clock_closing_soon(now, MINUTE_MS, speed=1) == now
    assert clock_closing_soon(now - 50_000, MINUTE_MS, speed=60) == now - 50_000  # 5 s at 60x is 5 minutes


@pytest.mark.e2e
def test_the_first_close_comes_within_seconds_of_the_start() -> None:
    port = free_port()
    process = manage(
        ["simulate_exchange", "--port", str(port), "--symbols", "btcusdt"],
        service_env("mongodb://127.0.0.1:1/", "unused"),
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process=process)
        started = time.monotonic()
        ws = websocket.create_connection(f"ws://127.0.0.1:{port}/market/stream?streams=btcusdt@kline_1m", timeout=10)
        try:
            while not json.loads(ws.recv())["data"]["k"]["x"]:
                assert time.monotonic() - started < 8, "no close within 8 s"
        finally:
            ws.close()
    finally:
        stop_process(process)


def test_a_sped_up_clock_runs_from_its_epoch_so_a_restart_continues_its_timeline() -> None:
    epoch = A_MINUTE
    first = start_clock(epoch + 10_000, MINUTE_MS, speed=60, epoch=epoch)
    assert first == epoch + 600_000  # ten wall seconds at 60x: ten simulated minutes
    again = start_clock(epoch + 70_000, MINUTE_MS, speed=60, epoch=epoch)  # restarted a minute later
    assert again - first == 60 * 60_000
    assert start_clock(epoch + 10_000, MINUTE_MS, speed=1, epoch=epoch) == clock_closing_soon(
        epoch + 10_000, MINUTE_MS, speed=1
    )  # at speed 1 the epoch is moot: the wall clock's timeline


@pytest.mark.e2e
def test_the_simulator_prints_the_kline_source_to_set() -> None:
    port = free_port()
    process = manage(
        ["simulate_exchange", "--port", str(port), "--symbols", "btcusdt", "--speed", "60", "--epoch", "1764800000000"],
        service_env("mongodb://127.0.0.1:1/", "unused"),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [process.stdout.readline().strip() for _ in range(4)]
    finally:
        stop_process(process)
    assert lines[1:] == [
        f"BINANCE_WS_URL=ws://127.0.0.1:{port}/market",
        f"BINANCE_REST_URL=http://127.0.0.1:{port}",
        "KLINE_SOURCE=simulated:seed=1,speed=60,epoch=1764800000000",
    ]
