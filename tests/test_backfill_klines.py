"""``backfill_klines`` against the simulated exchange's archive and REST, into a real SecantusDB, as a subprocess."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pymongo
import pytest

from klines.binance.parse import datetime_to_ms
from klines.testing.servers import TEST_SOURCE, exchange_urls, manage, service_env
from tests.fake_exchange import ExchangeThread, FaultyExchange
from tests.helpers import FIELDS, index_of, stored, wait_until

NOW = datetime(2022, 1, 3, 2, 0, 30, tzinfo=UTC)  # the exchange's clock at start: two hours into "today"
SINCE = "2021-12-30"  # two header-less daily files (2021), then two with a header, then REST for today
HOUR = 3_600_000


@pytest.fixture
def exchange() -> Iterator[ExchangeThread]:
    fake = FaultyExchange(
        symbols=["btcusdt", "ethusdt"], intervals=("1h", "1m"), update_seconds=1.0, start_ms=datetime_to_ms(NOW)
    )
    with ExchangeThread(fake) as thread:
        yield thread


@pytest.fixture
def env(secantus, database: str, exchange: ExchangeThread) -> dict[str, str]:
    return service_env(
        secantus.uri,
        database,
        **exchange_urls(exchange.port),
        BINANCE_ARCHIVE_URL=exchange.rest_url,
        KLINE_SYMBOLS="btcusdt,ethusdt",
        KLINE_INTERVALS="1h",
    )


@pytest.fixture
def klines(secantus, database: str) -> pymongo.collection.Collection:
    return pymongo.MongoClient(secantus.uri)[database]["klines"]


def backfill(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = manage(["backfill_klines", *args], env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = process.communicate(timeout=300)
    return process.returncode, out, err


def assert_exchanges_klines(
    klines: pymongo.collection.Collection,
    exchange: ExchangeThread,
    symbol: str,
    interval: str,
    first: datetime,
    *,
    to_now: bool = True,
) -> list:
    """Everything stored is the exchange's series from ``first`` to the last closed kline: once each, every digit."""
    got = stored(klines, symbol, interval)
    fake: FaultyExchange = exchange.exchange  # type: ignore[assignment]
    first_index = datetime_to_ms(first) // (HOUR if interval == "1h" else 60_000)
    assert index_of(got[0]) == first_index
    truth = fake.truth(symbol.upper(), first_index, index_of(got[-1]), interval)
    assert [k.open_time for k in got] == [k.open_time for k in truth], "gaps or duplicates"
    assert [[str(getattr(k, f)) for f in FIELDS] for k in got] == [[str(getattr(k, f)) for f in FIELDS] for k in truth]
    assert not to_now or index_of(got[-1]) >= fake.last_closed_index(interval) - 1
    return got


def test_fills_the_range_from_archive_files_and_rest_and_a_second_run_stores_nothing(
    env: dict[str, str], exchange: ExchangeThread, klines: pymongo.collection.Collection
) -> None:
    code, out, err = backfill(env, "--since", SINCE, "--intervals", "1h,1m", "--symbols", "btcusdt")
    assert code == 0, err
    for interval in ("1h", "1m"):
        assert_exchanges_klines(klines, exchange, "btcusdt", interval, datetime(2021, 12, 30, tzinfo=UTC))
    assert "BTCUSDT 1h: 2021-12-30 00:00..2022-01-03 01:00 UTC; added 96 from archive, 2 from REST" in out
    assert "BTCUSDT-1m-2021-12-30.zip: 1440 klines added from the archive" in out
    count = klines.count_documents({})

    code, out, err = backfill(env, "--since", SINCE, "--intervals", "1h,1m", "--symbols", "btcusdt")
    assert code == 0, err
    assert klines.count_documents({}) <= count + 1  # at most the minute that closed meanwhile
    assert "BTCUSDT 1h: 2021-12-30 00:00..2022-01-03 01:00 UTC; added 0 from archive, 0 from REST, 98 already" in out
    fake: FaultyExchange = exchange.exchange  # type: ignore[assignment]
    zips = [p for p in fake.archive_requests if p.endswith(".zip")]
    assert len(zips) == 8, "the first run's files are downloaded once, the second skips them (stored)"


def test_nothing_before_the_listing_is_requested(
    env: dict[str, str], exchange: ExchangeThread, klines: pymongo.collection.Collection
) -> None:
    code, out, err = backfill(env, "--since", "2019-09-20", "--until", "2019-09-27", "--symbols", "ethusdt")
    assert code == 0, err
    listed = datetime(2019, 9, 25, 8, tzinfo=UTC)  # ONBOARD_MS
    got = assert_exchanges_klines(klines, exchange, "ethusdt", "1h", listed, to_now=False)
    assert len(got) == 40
    fake: FaultyExchange = exchange.exchange  # type: ignore[assignment]
    assert not [p for p in fake.archive_requests if "2019-09-2" in p and p.rsplit("-", 1)[1][:2] < "25"]


def test_a_corrupt_zip_and_a_wrong_checksum_fall_back_to_rest_and_are_named(
    env: dict[str, str], exchange: ExchangeThread, klines: pymongo.collection.Collection
) -> None:
    fake: FaultyExchange = exchange.exchange  # type: ignore[assignment]
    fake.archive_faults = {"BTCUSDT-1h-2021-12-31.zip": "corrupt", "BTCUSDT-1h-2022-01-01.zip": "checksum"}
    code, out, err = backfill(env, "--since", SINCE, "--symbols", "btcusdt")
    assert code == 0, err
    assert_exchanges_klines(klines, exchange, "btcusdt", "1h", datetime(2021, 12, 30, tzinfo=UTC))
    assert "bad file, fetched from REST instead: BTCUSDT-1h-2021-12-31.zip: corrupt zip" in out
    assert "bad file, fetched from REST instead: BTCUSDT-1h-2022-01-01.zip: SHA-256" in out
    assert "added 48 from archive, 50 from REST" in out
    assert "complete: every kline from 2021-12-30 00:00" in out


def test_a_missing_file_and_refusing_rest_leave_a_named_hole(
    env: dict[str, str], exchange: ExchangeThread, klines: pymongo.collection.Collection
) -> None:
    fake: FaultyExchange = exchange.exchange  # type: ignore[assignment]
    fake.archive_faults = {"BTCUSDT-1h-2021-12-31.zip": "missing"}
    fake.fail_rest(400, None, times=4)  # every try for that day's page
    code, out, err = backfill(env, "--since", SINCE, "--symbols", "btcusdt")
    assert code == 0, err
    assert "still missing 24 klines:" in out
    assert (
        "BTCUSDT-1h-2021-12-31.zip: 24 (BTCUSDT-1h-2021-12-31.zip: not published; REST: REST refused: HTTP 400" in out
    )
    assert len(stored(klines, "btcusdt", "1h")) == 98 - 24


def test_a_stored_kline_that_differs_is_reported_and_kept(
    env: dict[str, str], exchange: ExchangeThread, klines: pymongo.collection.Collection
) -> None:
    fake: FaultyExchange = exchange.exchange  # type: ignore[assignment]
    index = datetime_to_ms(datetime(2021, 12, 31, 5, tzinfo=UTC)) // HOUR
    (kline,) = fake.truth("BTCUSDT", index, index, "1h")
    code = (
        "from dataclasses import replace\nfrom decimal import Decimal\nfrom klines.store.writes import save_kline\n"
        "from tests.fake_exchange import FaultyExchange\n"
        f"k = FaultyExchange(symbols=['btcusdt'], intervals=['1h']).truth('BTCUSDT', {index}, {index}, '1h')[0]\n"
        "assert save_kline(replace(k, close=Decimal('1.5'))) is not None\n"
    )
    assert manage(["shell", "--no-imports", "-c", code], env).wait(60) == 0
    code, out, err = backfill(env, "--since", SINCE, "--symbols", "btcusdt")
    assert code == 0, err
    assert "1 stored klines differ from the exchange's (kept, not overwritten):" in out
    assert f"2021-12-31 05:00: close stored 1.5 archive {kline.close}" in out
    row = klines.find_one({"symbol": "BTCUSDT", "interval": "1h", "open_time": datetime(2021, 12, 31, 5)})
    assert row["close"].to_decimal() == Decimal("1.5")
    assert len(stored(klines, "btcusdt", "1h")) == 98


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "2022-01-02", "--until", "2022-01-01"], "--since 2022-01-02 is not before --until 2022-01-01"),
        (["--since", "2022-01-01", "--intervals", "7m"], "--intervals: unknown interval '7m'"),
        (["--since", "yesterday"], "--since: 'yesterday' is not a date such as 2024-01-01"),
        (["--since", "2022-01-01", "--symbols", "dogeusdt"], "unknown symbol DOGEUSDT: not listed by http://"),
    ],
)
def test_bad_input_is_one_line_and_stores_nothing(
    env: dict[str, str], klines: pymongo.collection.Collection, args: list[str], message: str
) -> None:
    code, out, err = backfill(env, *args)
    assert code == 1
    assert message in err
    assert len(err.strip().splitlines()) == 1, err
    assert klines.count_documents({}) == 0


def test_a_run_killed_midway_resumes_and_ends_as_an_uninterrupted_one(
    env: dict[str, str], exchange: ExchangeThread, klines: pymongo.collection.Collection
) -> None:
    args = ["backfill_klines", "--since", "2021-01-01", "--symbols", "btcusdt"]  # 12 monthly files, 2 daily, REST
    whole = 365 * 24 + 2 * 24 + 2
    process = manage(args, env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: klines.count_documents({}) >= 3000, timeout=180, what="a part of the year stored")
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    assert klines.count_documents({}) < whole, "killed before the end"
    fake: FaultyExchange = exchange.exchange  # type: ignore[assignment]
    asked = len(fake.archive_requests)

    code, out, err = backfill(env, *args[1:])
    assert code == 0, err
    got = assert_exchanges_klines(klines, exchange, "btcusdt", "1h", datetime(2021, 1, 1, tzinfo=UTC))
    assert len(got) == whole
    added = int(out.split("; added ")[1].split(" from archive")[0])
    assert added <= whole - 3000, "the second run continued, it did not start over"
    zips = [p for p in fake.archive_requests[asked:] if p.endswith(".zip")]
    assert len(zips) <= 14 - 3000 // 744, "months stored by the first run are not downloaded again"
    assert "already stored" in out and "complete: every kline from 2021-01-01 00:00" in out


def test_the_simulator_answers_intervals_it_does_not_stream(
    secantus, database: str, klines: pymongo.collection.Collection
) -> None:
    """``make simulate`` streams KLINE_INTERVALS (1m); ``backfill_klines --intervals 1m,1h`` gets 1h too."""
    fake = FaultyExchange(symbols=["btcusdt"], intervals=("1m",), update_seconds=1.0, start_ms=datetime_to_ms(NOW))
    with ExchangeThread(fake) as exchange:
        env = service_env(secantus.uri, database, **exchange_urls(exchange.port), BINANCE_ARCHIVE_URL=exchange.rest_url)
        code, out, err = backfill(env, "--since", "2022-01-01", "--symbols", "btcusdt", "--intervals", "1h")
        assert code == 0, err
        assert "BTCUSDT 1h: 2022-01-01 00:00..2022-01-03 01:00 UTC; added 48 from archive, 2 from REST" in out


def test_a_database_of_another_exchange_is_refused_before_any_request(
    env: dict[str, str], exchange: ExchangeThread, secantus, database: str, klines: pymongo.collection.Collection
) -> None:
    pymongo.MongoClient(secantus.uri)[database]["exchange_source"].insert_one(
        {"record": 1, "source": "binance-usdm", "rest_url": "https://fapi.binance.com", "exchange_info": ""}
    )
    code, out, err = backfill(env, "--since", "2022-01-01")
    assert code == 1
    assert err.strip().splitlines() == [
        f"CommandError: this database holds klines from binance-usdm, not {TEST_SOURCE} ({exchange.rest_url}); "
        "set MONGO_DATABASE to another database for this exchange (klines of two exchanges never mix)"
    ]
    fake: FaultyExchange = exchange.exchange  # type: ignore[assignment]
    assert fake.rest_calls == []
    assert klines.count_documents({}) == 0
