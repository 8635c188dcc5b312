"""Which exchange feeds the record, and the last ``exchangeInfo`` it published (the ``exchange_source`` row)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from django.db import IntegrityError

from klines.binance.listing import tradable_perpetuals
from klines.binance.parse import MalformedMessage
from klines.binance.source import same_address, without_credentials
from klines.models import ExchangeSource


class RecordClaimedError(Exception):
    """The database already holds another exchange's record; the message says what to do."""


def claim_record(source: str, *, rest_url: str) -> None:
    """Make ``source`` the record's exchange, or raise :class:`RecordClaimedError` if another one feeds it.

    Atomic: the claim is one row under a fixed unique key, so of two ingests claiming an empty
    database at once one inserts and the other reads the winner back. A claim kept by an older
    version (a URL, no source) is taken over by the same address (``localhost`` = ``127.0.0.1``).
    """
    rest_url = without_credentials(rest_url)
    try:
        ExchangeSource.objects.create(source=source, rest_url=rest_url)
        return
    except IntegrityError:
        pass  # claimed already (perhaps a moment ago, by another ingest)
    owner = ExchangeSource.objects.get()
    if not owner.source and same_address(owner.rest_url, rest_url):
        ExchangeSource.objects.filter(pk=owner.pk, source="").update(source=source)
        owner.refresh_from_db()
    if owner.source != source:
        raise RecordClaimedError(
            f"this database holds klines from {owner.source or owner.rest_url}, not {source} ({rest_url}); "
            "set MONGO_DATABASE to another database for this exchange (klines of two exchanges never mix)"
        )
    if owner.rest_url != rest_url:
        ExchangeSource.objects.filter(pk=owner.pk).update(rest_url=rest_url)


def save_exchange_info(body: str) -> None:
    """Keep ``body`` (``GET /fapi/v1/exchangeInfo`` as fetched) as the record's exchange information."""
    ExchangeSource.objects.update(exchange_info=body, exchange_info_fetched_at=datetime.now(UTC))


def exchange_info() -> str | None:
    """The last ``exchangeInfo`` body the ingest fetched, or ``None`` before the first."""
    source = ExchangeSource.objects.exclude(exchange_info="").order_by("-exchange_info_fetched_at").first()
    return source.exchange_info if source is not None else None


def listed_symbols() -> tuple[str, ...]:
    """The trading perpetuals of the last ``exchangeInfo`` kept (empty before the first)."""
    body = exchange_info()
    if body is None:
        return ()
    try:
        return tradable_perpetuals(json.loads(body))
    except (ValueError, MalformedMessage):
        return ()
