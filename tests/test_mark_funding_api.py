"""``/fapi/v1/markPriceKlines`` and ``/fapi/v1/fundingRate`` on a real daphne: Binance's rows, limits, time
rules and errors, from a record of the simulated exchange's own rows (issue 22, part 4)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pymongo
import pytest

from klines.simexchange.derivatives import FUNDING_MS, funding_entry, mark_row
from klines.testing.servers import SecantusServer, daphne, free_port, manage, service_env, stop_process
from tests.helpers import BASE_INDEX, SERIES, migrate
from tests.test_api import Mirror

pytestmark = pytest.mark.e2e
MINUTE_MS, HOUR_MS = 60_000, 3_600_000
MINUTES = 1600  # BTCUSDT 1m mark-price klines from BASE_INDEX: more than the largest page
HOURS = 30  # BTCUSDT 1h mark-price klines (1h is not a kline interval here: freqtrade's mark interval)
FIRST_FUNDING = BASE_INDEX * MINUTE_MS // FUNDING_MS + 1
FUNDINGS = 150  # per symbol, every 8 h: more than the default page (100)
HOUR_SERIES = type(SERIES)(interval="1h", interval_ms=HOUR_MS)


def minute_rows(first: int, last: int) -> list[list[Any]]:
    """The exchange's own rows for minutes ``first`` to ``last`` (offsets from BASE_INDEX)."""
    return [mark_row(SERIES.kline("BTCUSDT", BASE_INDEX + i), seed=1, samples=60) for i in range(first, last + 1)]


def hour_rows() -> list[list[Any]]:
    return [mark_row(HOUR_SERIES.kline("BTCUSDT", BASE_INDEX // 60 + i), seed=1, samples=3600) for i in range(HOURS)]


def fundings(symbol: str, first: int, last: int) -> list[dict[str, Any]]:
    return [funding_entry(SERIES, symbol, (FIRST_FUNDING + i) * FUNDING_MS) for i in range(first, last + 1)]


@pytest.fixture(scope="module")
def mirror(secantus: SecantusServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirror]:
    database = f"derivatives_{uuid.uuid4().hex[:8]}"
    migrate(secantus.uri, database)
    env = service_env(secantus.uri, database, KLINE_SYMBOLS="btcusdt,ethusdt", KLINE_INTERVALS="1m")
    code = (
        "from klines.binance.derivatives import parse_funding, parse_mark_row\n"
        "from klines.store.derivatives import save_funding, save_mark_klines\n"
        "from tests.test_mark_funding_api import FUNDINGS, MINUTES, fundings, hour_rows, minute_rows\n"
        "rows, hours = minute_rows(0, MINUTES - 1), hour_rows()\n"
        "entries = fundings('BTCUSDT', 0, FUNDINGS - 1) + fundings('ETHUSDT', 0, FUNDINGS - 1)\n"
        "assert save_mark_klines([parse_mark_row(r, symbol='BTCUSDT', interval='1m') for r in rows]) == len(rows)\n"
        "assert save_mark_klines([parse_mark_row(r, symbol='BTCUSDT', interval='1h') for r in hours]) == len(hours)\n"
        "assert save_funding([parse_funding(e) for e in entries]) == len(entries)\n"
        # Stored exactly once: a second write of the same rows stores nothing.
        "assert save_mark_klines([parse_mark_row(r, symbol='BTCUSDT', interval='1m') for r in rows[:10]]) == 0\n"
        "assert save_funding([parse_funding(e) for e in entries[:10]]) == 0\n"
    )
    assert manage(["shell", "--no-imports", "-c", code], env).wait(120) == 0
    port = free_port()
    process = daphne(port, env, tmp_path_factory.mktemp("derivatives") / "daphne.log")
    yield Mirror(f"http://127.0.0.1:{port}")
    stop_process(process)
    pymongo.MongoClient(secantus.uri).drop_database(database)


def marks(mirror: Mirror, **params: Any) -> Any:
    status, body, _ = mirror.get("/fapi/v1/markPriceKlines?" + "&".join(f"{k}={v}" for k, v in params.items()))
    assert status == 200, body
    return body


def funding(mirror: Mirror, query: str = "") -> tuple[int, Any]:
    status, body, _ = mirror.get(f"/fapi/v1/fundingRate?{query}")
    return status, body


def test_mark_price_klines_without_times_are_the_newest_500_in_binance_s_rows(mirror: Mirror) -> None:
    assert marks(mirror, symbol="BTCUSDT", interval="1m") == minute_rows(MINUTES - 500, MINUTES - 1)


def test_mark_price_klines_limit_up_to_1500(mirror: Mirror) -> None:
    assert marks(mirror, symbol="btcusdt", interval="1m", limit=1500) == minute_rows(MINUTES - 1500, MINUTES - 1)
    for limit in (0, 1501):
        status, body, _ = mirror.get(f"/fapi/v1/markPriceKlines?symbol=BTCUSDT&interval=1m&limit={limit}")
        assert (status, body) == (400, {"code": -1130, "msg": "Data sent for parameter 'limit' is not valid."})


def test_mark_price_klines_start_and_end_times(mirror: Mirror) -> None:
    start = (BASE_INDEX + 100) * MINUTE_MS
    assert marks(mirror, symbol="BTCUSDT", interval="1m", startTime=start - 1, limit=3) == minute_rows(100, 102)
    assert marks(mirror, symbol="BTCUSDT", interval="1m", endTime=start, limit=3) == minute_rows(98, 100)
    end = start + 4 * MINUTE_MS
    assert marks(mirror, symbol="BTCUSDT", interval="1m", startTime=start, endTime=end) == minute_rows(100, 104)


def test_mark_price_klines_at_freqtrade_s_1h_though_klines_are_recorded_at_1m_only(mirror: Mirror) -> None:
    rows = marks(mirror, symbol="BTCUSDT", interval="1h", limit=2)
    assert [row[0] for row in rows] == [(BASE_INDEX // 60 + HOURS - 2 + i) * HOUR_MS for i in range(2)]
    assert rows[0][5:] == ["0", rows[0][6], "0", 3600, "0", "0", "0"]


@pytest.mark.parametrize(
    ("query", "code", "msg"),
    [
        ("symbol=DOGEUSDT&interval=1m", -1121, "Invalid symbol."),
        ("symbol=BTCUSDT&interval=5m", -1120, "Invalid interval."),
        ("interval=1m", -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."),
        ("symbol=BTCUSDT", -1102, "Mandatory parameter 'interval' was not sent, was empty/null, or malformed."),
        ("symbol=BTCUSDT&interval=1m&startTime=2&endTime=1", -1023, "Start time is greater than end time."),
        (
            "symbol=BTCUSDT&interval=1m&startTime=soon",
            -1100,
            "Illegal characters found in parameter 'startTime'; legal range is '^-?[0-9]{1,20}$'.",
        ),
    ],
)
def test_mark_price_klines_errors_are_binance_s(mirror: Mirror, query: str, code: int, msg: str) -> None:
    status, body, _ = mirror.get(f"/fapi/v1/markPriceKlines?{query}")
    assert (status, body) == (400, {"code": code, "msg": msg})


def test_funding_rates_of_a_symbol_newest_100_by_default(mirror: Mirror) -> None:
    assert funding(mirror, "symbol=BTCUSDT") == (200, fundings("BTCUSDT", FUNDINGS - 100, FUNDINGS - 1))


def test_funding_rates_from_start_time_up_to_end_time(mirror: Mirror) -> None:
    start = (FIRST_FUNDING + 10) * FUNDING_MS
    assert funding(mirror, f"symbol=BTCUSDT&startTime={start - 1}&limit=2") == (200, fundings("BTCUSDT", 10, 11))
    end = start + 3 * FUNDING_MS
    assert funding(mirror, f"symbol=BTCUSDT&startTime={start}&endTime={end}") == (200, fundings("BTCUSDT", 10, 13))
    assert funding(mirror, f"symbol=BTCUSDT&endTime={start}&limit=1") == (200, fundings("BTCUSDT", 10, 10))


def test_funding_rates_without_a_symbol_are_every_recorded_symbol_s(mirror: Mirror) -> None:
    status, body = funding(mirror, "limit=1000")
    assert status == 200
    assert len(body) == 2 * FUNDINGS
    assert body[:2] == [*fundings("BTCUSDT", 0, 0), *fundings("ETHUSDT", 0, 0)]


@pytest.mark.parametrize(
    ("query", "code", "msg"),
    [
        ("symbol=DOGEUSDT", -1121, "Invalid symbol."),
        ("symbol=BTCUSDT&limit=1001", -1130, "Data sent for parameter 'limit' is not valid."),
        ("symbol=BTCUSDT&limit=0", -1130, "Data sent for parameter 'limit' is not valid."),
        ("symbol=BTCUSDT&startTime=5&endTime=4", -1023, "Start time is greater than end time."),
    ],
)
def test_funding_rate_errors_are_binance_s(mirror: Mirror, query: str, code: int, msg: str) -> None:
    assert funding(mirror, query) == (400, {"code": code, "msg": msg})
