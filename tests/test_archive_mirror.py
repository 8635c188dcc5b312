"""The mirror as a Binance archive, end to end: a record backfilled from the simulated exchange, served by a real
daphne as ``/data/futures/um/...`` zips and ``.CHECKSUM`` files, and a second instance's ``backfill_klines``
pointed at it (``BINANCE_ARCHIVE_URL`` and REST) ends with the same record.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

import httpx
import pymongo
import pytest

from klines.api.rows import kline_row
from klines.binance.archive import parse_checksum
from klines.binance.archive_csv import HEADER
from klines.binance.parse import datetime_to_ms
from klines.testing.servers import (
    TEST_SOURCE,
    SecantusServer,
    daphne,
    exchange_urls,
    free_port,
    manage,
    service_env,
    stop_process,
)
from tests.fake_exchange import ExchangeThread, FaultyExchange
from tests.helpers import migrate, stored

NOW = datetime(2022, 1, 3, 2, 0, 30, tzinfo=UTC)  # the exchange's clock: two hours into 2022-01-03
SINCE, UNTIL = "2021-12-30", "2022-01-03"  # four whole past days
HOLE = datetime(2022, 1, 1, 12, 0, tzinfo=UTC)  # one 1m kline deleted from the first record
LAST_OF_2021 = date(2021, 12, 31)
DAY = "data/futures/um/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2021-12-31.zip"


@dataclass
class First:
    url: str
    database: pymongo.database.Database
    exchange: ExchangeThread


def backfill(env: dict[str, str], *args: str) -> str:
    process = manage(["backfill_klines", *args], env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return out


@pytest.fixture(scope="module")
def first(secantus: SecantusServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[First]:
    """The first instance: 1m and 1h of BTCUSDT for four days from the exchange's archive, less one kline, served."""
    fake = FaultyExchange(symbols=["btcusdt"], intervals=("1h", "1m"), update_seconds=1.0, start_ms=datetime_to_ms(NOW))
    name = f"archive_mirror_{uuid.uuid4().hex[:8]}"
    migrate(secantus.uri, name)
    database = pymongo.MongoClient(secantus.uri)[name]
    with ExchangeThread(fake) as exchange:
        env = service_env(
            secantus.uri,
            name,
            **exchange_urls(exchange.port),
            BINANCE_ARCHIVE_URL=exchange.rest_url,
            KLINE_SYMBOLS="btcusdt",
            KLINE_INTERVALS="1m,1h",
        )
        backfill(env, "--since", SINCE, "--until", UNTIL, "--quiet")
        info = httpx.get(f"{exchange.rest_url}/fapi/v1/exchangeInfo").text
        code = f"from klines.store.exchange import save_exchange_info\nsave_exchange_info({info!r})\n"
        assert manage(["shell", "--no-imports", "-c", code], env).wait(60) == 0
        assert database["klines"].delete_one({"interval": "1m", "open_time": HOLE}).deleted_count == 1
        port = free_port()
        process = daphne(port, env, tmp_path_factory.mktemp("archive") / "daphne.log")
        try:
            yield First(f"http://127.0.0.1:{port}", database, exchange)
        finally:
            stop_process(process)
            pymongo.MongoClient(secantus.uri).drop_database(name)


def test_a_day_is_binances_file_byte_stable_with_its_checksum_and_the_stored_digits(first: First) -> None:
    one = httpx.get(f"{first.url}/{DAY}")
    two = httpx.get(f"{first.url}/{DAY}")
    assert one.status_code == 200, one.text
    assert one.headers["content-type"] == "application/zip"
    assert one.content == two.content
    checksum = httpx.get(f"{first.url}/{DAY}.CHECKSUM")
    assert checksum.status_code == 200
    assert checksum.text == f"{hashlib.sha256(one.content).hexdigest()}  BTCUSDT-1m-2021-12-31.zip\n"
    assert parse_checksum(checksum.text, name="BTCUSDT-1m-2021-12-31.zip") == hashlib.sha256(one.content).hexdigest()
    lines = zipfile.ZipFile(io.BytesIO(one.content)).read("BTCUSDT-1m-2021-12-31.csv").decode().splitlines()
    assert lines[0] == ",".join(HEADER)
    day = [
        k for k in stored(first.database["klines"], "BTCUSDT") if k.open_time.date() == datetime(2021, 12, 31).date()
    ]
    assert len(day) == 1440
    assert lines[1:] == [",".join(map(str, kline_row(k))) for k in day]


def test_etag_head_and_revalidation(first: First) -> None:
    body = httpx.get(f"{first.url}/{DAY}").content
    etag = f'"{hashlib.sha256(body).hexdigest()}"'
    again = httpx.get(f"{first.url}/{DAY}")
    assert again.headers["etag"] == etag
    assert again.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert httpx.get(f"{first.url}/{DAY}", headers={"If-None-Match": etag}).status_code == 304
    head = httpx.head(f"{first.url}/{DAY}")
    assert head.status_code == 200
    assert (head.headers["content-length"], head.headers["etag"], head.content) == (str(len(body)), etag, b"")


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("daily/klines/BTCUSDT/1m/BTCUSDT-1m-2022-01-01.zip", "incomplete, 1 of 1440 klines missing"),
        ("daily/klines/BTCUSDT/1m/BTCUSDT-1m-2022-01-01.zip.CHECKSUM", "incomplete, 1 of 1440 klines missing"),
        ("monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2021-12.zip", "incomplete, 696 of 744 klines missing"),
        ("daily/klines/BTCUSDT/1m/BTCUSDT-1m-2021-01-01.zip", "no klines of it are stored"),
        ("daily/klines/ETHUSDT/1m/ETHUSDT-1m-2021-12-31.zip", "ETHUSDT is not recorded here"),
        ("daily/klines/BTCUSDT/5m/BTCUSDT-5m-2021-12-31.zip", "interval 5m is not recorded here"),
        ("daily/klines/BTCUSDT/1m/BTCUSDT-1m-2099-01-01.zip", "its day is not over yet"),
        ("daily/klines/BTCUSDT/1m/BTCUSDT-1m-2021-12.zip", "not an archive file"),
    ],
)
def test_what_is_not_a_complete_past_file_is_a_404_with_a_reason(first: First, path: str, reason: str) -> None:
    response = httpx.get(f"{first.url}/data/futures/um/{path}")
    assert response.status_code == 404
    assert reason in response.json()["msg"]


def test_a_second_instance_backfills_from_the_first_ones_archive_and_ends_with_the_same_record(
    first: First, secantus: SecantusServer
) -> None:
    name = f"archive_second_{uuid.uuid4().hex[:8]}"
    migrate(secantus.uri, name)
    try:
        env = service_env(
            secantus.uri,
            name,
            BINANCE_WS_URL=first.url.replace("http", "ws") + "/market",
            BINANCE_REST_URL=first.url,
            BINANCE_ARCHIVE_URL=first.url,
            KLINE_SOURCE=TEST_SOURCE,
            KLINE_SYMBOLS="btcusdt",
            KLINE_INTERVALS="1m,1h",
        )
        out = backfill(env, "--since", SINCE, "--until", UNTIL)
        assert "BTCUSDT 1h: 2021-12-30 00:00..2022-01-02 23:00 UTC; added 96 from archive, 0 from REST" in out, out
        # The day with the hole is refused (404) and read from the first instance's REST instead.
        assert "added 4320 from archive, 1439 from REST" in out, out
        assert "BTCUSDT-1m-2022-01-01.zip: 1 (BTCUSDT-1m-2022-01-01.zip: not published" in out
        second = pymongo.MongoClient(secantus.uri)[name]
        assert documents(second) == documents(first.database)
        assert len(documents(second)) == 96 + 4 * 1440 - 1
    finally:
        pymongo.MongoClient(secantus.uri).drop_database(name)


def documents(database: pymongo.database.Database) -> list[dict]:
    """Every stored kline's values (not its id, nor when this instance stored it), in key order."""
    rows = database["klines"].find({}, {"_id": 0, "stored_at": 0}).sort([("interval", 1), ("open_time", 1)])
    return list(rows)
