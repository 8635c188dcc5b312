"""Which exchange feeds the record, and the last ``exchangeInfo`` it published (the ``exchange_source`` row)."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime

from django.db import IntegrityError

from klines.binance.listing import tradable_perpetuals
from klines.binance.parse import MalformedMessage
from klines.models import ExchangeSource


class RecordClaimedError(Exception):
    """The database already holds another exchange's record; the message says what to do."""


def claim_record(rest_url: str) -> None:
    """Make ``rest_url`` the record's exchange, or raise :class:`RecordClaimedError` if another one feeds it."""
    owners = list(ExchangeSource.objects.values_list("rest_url", flat=True)[:2])
    if not owners:
        with contextlib.suppress(IntegrityError):  # another ingest for the same exchange claimed it first
            ExchangeSource.objects.create(rest_url=rest_url)
        owners = list(ExchangeSource.objects.values_list("rest_url", flat=True)[:2])
    others = [url for url in owners if url != rest_url]
    if others:
        raise RecordClaimedError(
            f"this database holds klines from {others[0]}, not {rest_url}; "
            "set MONGO_DATABASE to another database for this exchange (klines of two exchanges never mix)"
        )


def save_exchange_info(rest_url: str, body: str) -> None:
    """Keep ``body`` (``GET /fapi/v1/exchangeInfo`` as fetched) as the record's exchange information."""
    ExchangeSource.objects.filter(rest_url=rest_url).update(
        exchange_info=body, exchange_info_fetched_at=datetime.now(UTC)
    )


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
