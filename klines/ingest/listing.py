"""The exchange's listing: ``GET /fapi/v1/exchangeInfo`` at start and every ``KLINE_SYMBOLS_REFRESH_SECONDS``.

Each successful read is kept in the database (the mirror serves it as
``/fapi/v1/exchangeInfo``) and handed to ``on_listing`` as the tradable
perpetual symbols. On the first read, every configured symbol must be listed:
a typo such as ``btcusd`` stops the ingest with one line naming it, instead
of a stream that stays silent. If REST does not answer at start, the ingest
runs anyway and the check happens as soon as it does.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable

from django.db import DatabaseError
from pymongo.errors import PyMongoError

from klines.backoff import Backoff
from klines.binance.listing import tradable_perpetuals
from klines.binance.parse import MalformedMessage
from klines.binance.rest import BinanceRest, RestError
from klines.ingest.supervise import FatalCondition
from klines.store.exchange import save_exchange_info

logger = logging.getLogger(__name__)

RETRY = Backoff(initial=2.0, maximum=60.0)  # REST or the database not answering
EXCHANGE_INFO_WEIGHT = 1


class ExchangeListing:
    def __init__(
        self,
        *,
        rest: BinanceRest,
        configured: tuple[str, ...],
        refresh_seconds: float,
        stop: threading.Event,
        on_listing: Callable[[tuple[str, ...]], None] = lambda symbols: None,
        retry: Backoff = RETRY,
    ) -> None:
        """``configured``: the symbols that must be listed (empty with ``KLINE_SYMBOLS=all``)."""
        self.rest = rest
        self.configured = tuple(s.upper() for s in configured)
        self.refresh_seconds = refresh_seconds
        self.stop = stop
        self.on_listing = on_listing
        self.retry = retry
        self.listed: tuple[str, ...] | None = None  # the last tradable perpetuals read
        self.reads = 0

    def run(self) -> None:
        """Read the listing until ``stop``; raise :class:`FatalCondition` for an unlisted configured symbol."""
        attempt = 0
        while not self.stop.is_set():
            try:
                self.read_once()
            except (RestError, MalformedMessage, DatabaseError, PyMongoError) as exc:
                delay = self.retry.delay(attempt)
                attempt += 1
                logger.warning("exchange listing not read (%s); retrying in %.0fs", exc, delay)
                self.stop.wait(delay)
                continue
            attempt = 0
            self.stop.wait(self.refresh_seconds)

    def read_once(self) -> tuple[str, ...]:
        body = self.rest.get("/fapi/v1/exchangeInfo", {}, weight=EXCHANGE_INFO_WEIGHT)
        listed = tradable_perpetuals(body)
        if self.listed is None:
            self._check_configured(listed)
        if listed != self.listed:
            logger.info("exchange lists %d trading perpetual contracts", len(listed))
            self.listed = listed
            self.on_listing(listed)
        self._keep(body)  # a database error retries the whole read later
        self.reads += 1
        return listed

    def _check_configured(self, listed: tuple[str, ...]) -> None:
        missing = [symbol for symbol in self.configured if symbol not in set(listed)]
        if missing:
            names = ", ".join(s.lower() for s in missing)
            raise FatalCondition(
                f"KLINE_SYMBOLS: {names} {'is' if len(missing) == 1 else 'are'} not listed by {self.rest.base_url} "
                "as a trading perpetual contract; check the spelling (e.g. btcusdt)"
            )

    def _keep(self, body: object) -> None:
        """Keep the copy in the database (for the mirror), in the record's claim (``ingest_klines`` made it)."""
        save_exchange_info(json.dumps(body, separators=(",", ":")))
