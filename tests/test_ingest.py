"""KlineIngestor: stream frames in, closed klines stored once, bad frames logged and skipped."""

from __future__ import annotations

import json
import logging

import pytest

from klines.ingest.frames import KlineIngestor
from klines.models import Kline
from klines.simexchange.series import KlineSeries
from tests.helpers import BASE_INDEX, closed_kline

pytestmark = pytest.mark.django_db(transaction=True)
SERIES = KlineSeries(interval="1m", interval_ms=60_000)
SYMBOLS = ("btcusdt", "ethusdt")


def frame(symbol: str, offset: int, *, closed: bool = True) -> str:
    kline = SERIES.kline(symbol, BASE_INDEX + offset)
    return json.dumps(kline.stream_event(closed=closed, event_ms=kline.close_ms + 1))


def test_only_closed_klines_are_stored() -> None:
    ingestor = KlineIngestor(symbols=SYMBOLS, interval="1m")
    ingestor.handle_message(frame("BTCUSDT", 0, closed=False))
    ingestor.handle_message(frame("BTCUSDT", 0, closed=True))
    ingestor.handle_message(frame("BTCUSDT", 1, closed=False))
    assert list(Kline.objects.values_list("symbol", "close")) == [("BTCUSDT", closed_kline("BTCUSDT", 0).close)]


def test_repeated_close_is_stored_once() -> None:
    stored = []
    ingestor = KlineIngestor(symbols=SYMBOLS, interval="1m", on_stored=stored.append)
    for _ in range(3):
        ingestor.handle_message(frame("ETHUSDT", 5))
    assert Kline.objects.count() == 1
    assert len(stored) == 1
    assert (ingestor.stats.stored, ingestor.stats.duplicates) == (1, 2)


@pytest.mark.parametrize(
    ("bad", "logged"),
    [
        ("{oops", "invalid JSON"),
        ('{"stream": "btcusdt@kline_1m", "data": {"e": "kline", "s": "BTCUSDT"}}', "no 'k'"),
        (frame("BTCUSDT", 0).replace('"c": "', '"c": "x'), "k.c is not a number"),
    ],
)
def test_malformed_message_is_logged_and_the_next_good_one_stored(
    bad: str, logged: str, caplog: pytest.LogCaptureFixture
) -> None:
    ingestor = KlineIngestor(symbols=SYMBOLS, interval="1m")
    with caplog.at_level(logging.WARNING, logger="klines"):
        ingestor.handle_message(bad)
        ingestor.handle_message(frame("BTCUSDT", 1))
    assert logged in caplog.text
    assert ingestor.stats.malformed == 1
    assert list(Kline.objects.values_list("open_time", flat=True)) == [closed_kline("BTCUSDT", 1).open_time]


def test_klines_of_unconfigured_symbols_are_skipped(caplog: pytest.LogCaptureFixture) -> None:
    ingestor = KlineIngestor(symbols=SYMBOLS, interval="1m")
    with caplog.at_level(logging.WARNING, logger="klines"):
        ingestor.handle_message(frame("DOGEUSDT", 0))
    assert Kline.objects.count() == 0
    assert "DOGEUSDT" in caplog.text


@pytest.mark.parametrize(
    ("options", "message"),
    [({"interval": "7m"}, "--interval: unknown interval '7m'"), ({"symbols": "btc-usdt"}, "--symbols: 'btc-usdt'")],
)
def test_ingest_command_rejects_bad_options_with_a_clear_error(options: dict, message: str) -> None:
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match=message):
        call_command("ingest_klines", **options)
