"""No silent death: every ingest thread runs under a :class:`Supervisor`.

An exception that escapes a thread's target is logged with its traceback and
sets :attr:`Supervisor.failed`; the service then stops, writes what is queued
as far as it can, and the command exits non-zero so the platform restarts it
(the start-up backfill and hole scan refill what was missed). A half-alive
process, reading but no longer storing, is worse than a dead one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)

Spawn = Callable[[str, Callable[[], None]], threading.Thread]


class FatalCondition(Exception):
    """A condition the ingest must not run under (a symbol the exchange does not list, a database that
    holds another exchange's klines): the service stops with this one line, no traceback."""


def unsupervised(name: str, target: Callable[[], None]) -> threading.Thread:
    """Start ``target`` in a daemon thread (components used on their own, as in tests)."""
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


class Supervisor:
    """Start threads whose unexpected death is logged and stops the service with a failure."""

    def __init__(self) -> None:
        self.failed = threading.Event()
        self.failure: str | None = None  # the first thread that died, and why
        self._lock = threading.Lock()

    def spawn(self, name: str, target: Callable[[], None]) -> threading.Thread:
        thread = threading.Thread(target=self._watched, args=(name, target), name=name, daemon=True)
        thread.start()
        return thread

    def _watched(self, name: str, target: Callable[[], None]) -> None:
        try:
            target()
        except FatalCondition as exc:
            logger.error("%s; stopping the ingest", exc)
            self._fail(str(exc))
        except BaseException as exc:
            logger.critical("thread %r died: %s: %s; stopping the ingest", name, type(exc).__name__, exc, exc_info=True)
            self._fail(f"thread {name!r} died: {type(exc).__name__}: {exc}")

    def _fail(self, failure: str) -> None:
        with self._lock:
            if self.failure is None:
                self.failure = failure
        self.failed.set()
