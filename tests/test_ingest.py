"""KlineIngestor: stream frames in, closed klines handed on, bad frames counted by kind, logged and skipped."""

from __future__ import annotations

import json
import logging

import pytest

from klines.binance.parse import ClosedKline
from klines.ingest.frames import KlineIngestor
from klines.simexchange.series import KlineSeries
from tests.helpers import BASE_INDEX, closed_kline

SERIES = KlineSeries(interval="1m", interval_ms=60_000)
SYMBOLS = ("btcusdt", "ethusdt")


def frame(symbol: str, offset: int, *, closed: bool = True, **k_changes: object) -> str:
    kline = SERIES.kline(symbol, BASE_INDEX + offset)
    event = kline.stream_event(closed=closed, event_ms=kline.close_ms + 1)
    event["data"]["k"].update(k_changes)
    return json.dumps(event)


def ingestor() -> tuple[KlineIngestor, list[ClosedKline]]:
    handed: list[ClosedKline] = []
    return KlineIngestor(streams=[(s, "1m") for s in SYMBOLS], sink=handed.append), handed


def test_only_closed_klines_are_handed_on() -> None:
    ingest, handed = ingestor()
    ingest.handle_message(frame("BTCUSDT", 0, closed=False))
    ingest.handle_message(frame("BTCUSDT", 0, closed=True))
    ingest.handle_message(frame("BTCUSDT", 1, closed=False))
    assert handed == [closed_kline("BTCUSDT", 0)]


@pytest.mark.parametrize(
    ("bad", "logged", "kind"),
    [
        ("{oops", "invalid JSON", "json"),
        ('{"stream": "btcusdt@kline_1m", "data": {"e": "kline", "s": "BTCUSDT"}}', "no 'k'", "data.k"),
        (frame("BTCUSDT", 0).replace('"c": "', '"c": "x'), "k.c is not a number", "k.c"),
        (frame("BTCUSDT", 0, c="1E+9999"), "k.c does not fit a Decimal128", "k.c"),
        (frame("BTCUSDT", 0, v="1" * 40), "k.v does not fit a Decimal128", "k.v"),
        (frame("BTCUSDT", 0, h="0.0000000000001"), "k.h has more than 12 decimal places", "k.h"),
        (frame("BTCUSDT", 0, n=2**63), "k.n is out of range", "k.n"),
        (frame("BTCUSDT", 0, t=10**20), "k.t is out of range", "k.t"),
    ],
)
def test_malformed_message_is_counted_by_kind_logged_and_the_next_good_one_handed_on(
    bad: str, logged: str, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    ingest, handed = ingestor()
    with caplog.at_level(logging.WARNING, logger="klines"):
        ingest.handle_message(bad)
        ingest.handle_message(frame("BTCUSDT", 1))
    assert logged in caplog.text
    assert ingest.stats.malformed == 1
    assert ingest.stats.malformed_kinds == {kind: 1}
    assert handed == [closed_kline("BTCUSDT", 1)]


def test_klines_of_unconfigured_symbols_are_skipped(caplog: pytest.LogCaptureFixture) -> None:
    ingest, handed = ingestor()
    with caplog.at_level(logging.WARNING, logger="klines"):
        ingest.handle_message(frame("DOGEUSDT", 0))
    assert handed == []
    assert ingest.stats.ignored == 1
    assert "DOGEUSDT" in caplog.text


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("options", "message"),
    [({"interval": "7m"}, "--interval: unknown interval '7m'"), ({"symbols": "btc-usdt"}, "--symbols: 'btc-usdt'")],
)
def test_ingest_command_rejects_bad_options_with_a_clear_error(options: dict, message: str) -> None:
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match=message):
        call_command("ingest_klines", **options)
