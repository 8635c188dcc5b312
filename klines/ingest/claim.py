"""Claim the record for the configured exchange before any request to it (``ingest_klines`` runs this first).

The check needs the database: while it does not answer, the ingest waits (with
backoff, stopping at once on ``stop``) and reads nothing from the exchange, so a
start that will be refused never fetches or streams.
"""

from __future__ import annotations

import logging
import threading

from django.db import DatabaseError
from pymongo.errors import PyMongoError

from klines.backoff import Backoff
from klines.store.exchange import claim_record

logger = logging.getLogger(__name__)

RETRY = Backoff(initial=1.0, maximum=10.0)  # after pymongo's own server selection timeout (5 s)


def claim_before_start(source: str, *, rest_url: str, stop: threading.Event, retry: Backoff = RETRY) -> bool:
    """Claim the record for ``source``; ``False`` if ``stop`` came first.

    Raises :class:`klines.store.exchange.RecordClaimedError` when another exchange feeds it.
    """
    attempt = 0
    while not stop.is_set():
        try:
            claim_record(source, rest_url=rest_url)
        except (DatabaseError, PyMongoError) as exc:
            delay = retry.delay(attempt)
            attempt += 1
            logger.warning(
                "database unavailable (%s); nothing is read from the exchange before it says whose record it "
                "holds; retrying in %.0fs",
                str(exc).split(", Timeout:")[0],
                delay,
            )
            stop.wait(delay)
            continue
        logger.info("this database records %s", source)
        return True
    return False
