"""The mirror's pages against a real daphne: ETags and 304s, which pages clients may keep for good, a
backfilled hole showing up at once, and closed pages answered while the database is stuck on another page."""

from __future__ import annotations

import json
import signal
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from klines.testing.servers import SecantusServer, daphne, free_port, service_env, stop_process
from tests.helpers import BASE_INDEX, SERIES, migrate, store_klines, wait_until

pytestmark = pytest.mark.e2e
MINUTE_MS = 60_000
START_MS = BASE_INDEX * MINUTE_MS  # open time of offset 0
HOLE = range(5, 20)  # SOLUSDT's record lacks these minutes until a test backfills them


class Mirror:
    def __init__(self, port: int, secantus: SecantusServer, env: dict[str, str]) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.secantus = secantus
        self.env = env

    def get(self, path: str, *, etag: str | None = None, timeout: float = 30) -> tuple[int, bytes, Any]:
        headers = {"If-None-Match": etag} if etag else {}
        request = urllib.request.Request(self.url + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read(), response.headers
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), exc.headers


def rows(symbol: str, offsets: range | list[int]) -> bytes:
    """The exchange's own rows for these minutes, encoded as the mirror must answer them."""
    truth = [SERIES.kline(symbol, BASE_INDEX + offset).rest_row() for offset in offsets]
    return json.dumps(truth, separators=(",", ":")).encode()


def page(symbol: str, offset: int, limit: int, end: int | None = None) -> str:
    path = f"/fapi/v1/klines?symbol={symbol}&interval=1m&startTime={START_MS + offset * MINUTE_MS}&limit={limit}"
    return path if end is None else f"{path}&endTime={START_MS + end * MINUTE_MS}"


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirror]:
    """A daphne on a SecantusDB of its own (one test stops it): BTCUSDT minutes 0-29, SOLUSDT with a hole."""
    workdir = tmp_path_factory.mktemp("pages")
    secantus = SecantusServer(workdir / "data").start()
    database = f"pages_{uuid.uuid4().hex[:8]}"
    migrate(secantus.uri, database)
    env = service_env(secantus.uri, database, KLINE_SYMBOLS="btcusdt,solusdt", KLINE_INTERVAL="1m")
    store_klines(env, {"BTCUSDT": range(30), "SOLUSDT": [o for o in range(30) if o not in HOLE]})
    port = free_port()
    process = daphne(port, env, workdir / "daphne.log", timeout=60)
    yield Mirror(port, secantus, env)
    stop_process(process)
    secantus.process.send_signal(signal.SIGCONT)  # in case a test failed with it stopped
    secantus.stop()


def test_a_closed_page_has_an_etag_is_cacheable_for_good_and_answers_304(mirror: Mirror) -> None:
    status, body, headers = mirror.get(page("BTCUSDT", 0, 10))
    assert (status, body) == (200, rows("BTCUSDT", range(10)))
    assert headers["ETag"].startswith('"') and "immutable" in headers["Cache-Control"]
    status, body, again = mirror.get(page("BTCUSDT", 0, 10), etag=headers["ETag"])
    assert (status, body, again["ETag"]) == (304, b"", headers["ETag"])
    # Another client's stale tag gets the page.
    assert mirror.get(page("BTCUSDT", 0, 10), etag='"stale"')[:2] == (200, rows("BTCUSDT", range(10)))


def test_a_page_up_to_an_end_time_in_the_record_is_closed(mirror: Mirror) -> None:
    status, body, headers = mirror.get(page("BTCUSDT", 20, 1500, end=25))
    assert (status, body) == (200, rows("BTCUSDT", range(20, 26)))
    assert "immutable" in headers["Cache-Control"]


def test_the_newest_page_may_change_so_clients_revalidate(mirror: Mirror) -> None:
    status, body, headers = mirror.get("/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=5")
    assert (status, body, headers["Cache-Control"]) == (200, rows("BTCUSDT", range(25, 30)), "no-cache")
    assert mirror.get("/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=5", etag=headers["ETag"])[0] == 304
    # A page running past the record's newest kline may still grow.
    assert mirror.get(page("BTCUSDT", 25, 10))[2]["Cache-Control"] == "no-cache"


def test_a_backfilled_hole_changes_the_page_and_its_etag(mirror: Mirror) -> None:
    with_hole = [o for o in range(30) if o not in HOLE][:10]
    status, body, headers = mirror.get(page("SOLUSDT", 0, 10))
    assert (status, body, headers["Cache-Control"]) == (200, rows("SOLUSDT", with_hole), "no-cache")
    assert mirror.get(page("SOLUSDT", 0, 10), etag=headers["ETag"])[0] == 304  # nothing changed yet

    store_klines(mirror.env, {"SOLUSDT": HOLE})  # the ingest's backfill fills the hole

    status, body, filled = mirror.get(page("SOLUSDT", 0, 10), etag=headers["ETag"])
    assert (status, body) == (200, rows("SOLUSDT", range(10)))
    assert filled["ETag"] != headers["ETag"] and "immutable" in filled["Cache-Control"]


def test_closed_pages_are_answered_while_the_database_is_stuck_on_another(mirror: Mirror) -> None:
    closed = page("BTCUSDT", 10, 10)
    assert mirror.get(closed)[0] == 200  # read once: kept
    stuck: dict[str, Any] = {}
    reader = threading.Thread(target=lambda: stuck.update(answer=mirror.get(page("BTCUSDT", 3, 10), timeout=120)))
    mirror.secantus.process.send_signal(signal.SIGSTOP)  # SecantusDB answers nothing
    try:
        reader.start()
        # The other page, and the other endpoints, go on being answered (one at a time, with no sleep).
        for _ in range(3):
            assert mirror.get(closed, timeout=10)[:2] == (200, rows("BTCUSDT", range(10, 20)))
            assert mirror.get("/fapi/v1/ping", timeout=10)[:2] == (200, b"{}")
        assert "answer" not in stuck  # the uncached page waits for the database
    finally:
        mirror.secantus.process.send_signal(signal.SIGCONT)
    wait_until(lambda: "answer" in stuck, timeout=60, what="the stuck page once the database answers")
    assert stuck["answer"][:2] == (200, rows("BTCUSDT", range(3, 13)))
    reader.join()
