"""A scan run every so often, only while the rest of the ingest is idle, retried with backoff when it fails."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from klines.backoff import Backoff

IDLE_WAIT_SECONDS = 0.5  # how often a scan waiting for the ingest to be idle asks again


def scan_periodically(
    scan: Callable[[], None],
    *,
    name: str,
    idle: Callable[[], bool],
    stop: threading.Event,
    every_seconds: float,
    retry: Backoff,
    failures: tuple[type[Exception], ...],
    log: logging.Logger,
) -> None:
    """Run ``scan`` once ``idle()``, then again ``every_seconds`` after it ends, until ``stop``; one of
    ``failures`` is logged as "``name`` failed" and retried after ``retry``'s delay."""
    attempt = 0
    while not stop.is_set():
        while not (idle() or stop.wait(IDLE_WAIT_SECONDS)):
            pass
        if stop.is_set():
            return
        try:
            scan()
        except failures as exc:
            if stop.is_set():
                return
            delay, attempt = retry.delay(attempt), attempt + 1
            log.warning("%s failed (%s); again in %.0fs", name, exc, delay)
            stop.wait(delay)
            continue
        attempt = 0
        stop.wait(every_seconds)
