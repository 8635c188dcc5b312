"""simulate_exchange starts its clock just before a close, so `make simulate` shows a live update at once."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import websocket

from klines.simexchange.server import clock_closing_soon
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
