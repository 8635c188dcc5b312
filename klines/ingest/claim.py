"""Claim the record for the configured exchange before any request to it (``ingest_klines`` runs this first).

The check needs the database: while it does not answer, the ingest waits (with
backoff, stopping at once on ``stop``) and reads nothing from the exchange, so a
start that will be refused never fetches or streams.
"""

from __future__ import annotations

import logging
import threading

from django.db import DatabaseError, connection
from pymongo.errors import PyMongoError

from klines.backoff import Backoff
from klines.store.exchange import claim_record
from klines.store.unique_index import require_unique_index

logger = logging.getLogger(__name__)

RETRY = Backoff(initial=1.0, maximum=10.0)  # after pymongo's own server selection timeout (5 s)


def claim_before_start(source: str, *, rest_url: str, stop: threading.Event, retry: Backoff = RETRY) -> bool:
    """Claim the record for ``source``; ``False`` if ``stop`` came first (at once, even amid a database call).

    Raises :class:`klines.store.exchange.RecordClaimedError` when another exchange feeds it, and
    :class:`klines.store.unique_index.UniqueIndexMissing` when the klines collection lacks its unique index.
    """
    outcome: list[BaseException | None] = []
    done = threading.Event()
    # pymongo waits 5 s for an absent server: the attempts run beside, so a stop never waits for one.
    worker = threading.Thread(
        target=_claim_until, args=(source, rest_url, stop, retry, outcome, done), name="record claim", daemon=True
    )
    worker.start()
    while not done.wait(0.05):
        if stop.is_set():
            return False
    if not outcome:  # stopped
        return False
    if outcome[0] is not None:
        raise outcome[0]
    return True


def _claim_until(
    source: str,
    rest_url: str,
    stop: threading.Event,
    retry: Backoff,
    outcome: list[BaseException | None],
    done: threading.Event,
) -> None:
    attempt = 0
    try:
        while not stop.is_set():
            try:
                require_unique_index()  # exactly-once storing depends on it; checked once the database answers
                claim_record(source, rest_url=rest_url)
            except (DatabaseError, PyMongoError) as exc:
                delay = retry.delay(attempt)
                attempt += 1
                logger.warning(
                    "database unavailable (%s); nothing is read from the exchange before it says whose record it "
                    "holds; retrying in %.0fs",
                    _reason(exc),
                    delay,
                )
                stop.wait(delay)
                continue
            logger.info("this database records %s", source)
            outcome.append(None)
            return
    except BaseException as exc:  # RecordClaimedError, or a bug: the caller raises it
        outcome.append(exc)
    finally:
        connection.close()  # this thread's
        done.set()


def _reason(exc: BaseException) -> str:
    """Django wraps pymongo's error, sometimes without a message: the cause, without pymongo's topology dump."""
    cause = exc.__cause__ or exc
    return f"{type(cause).__name__}: {str(cause).split(' (configured timeouts')[0].split(', Timeout:')[0][:200]}"
