"""The admin's kline list on a large record: every read it sends is a kline_latest index read, nothing counts."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import User
from django.test import Client

from klines.adminlist import date_window, drilldown
from klines.models import Kline
from klines.store.browse import Cursor
from klines.store.writes import save_klines
from tests.conftest import ReadCounter
from tests.helpers import closed_kline

CHANGELIST = "/admin/klines/kline/"


@pytest.fixture
def admin_client_mongo() -> Client:
    user = User.objects.create_superuser("admin", "admin@example.com", "correct horse battery")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def record() -> None:
    """250 one-minute BTCUSDT klines, 30 ETHUSDT, 3 five-minute BTCUSDT."""
    save_klines([closed_kline("BTCUSDT", offset) for offset in range(250)])
    save_klines([closed_kline("ETHUSDT", offset) for offset in range(30)])
    save_klines([closed_kline("BTCUSDT", offset, "5m") for offset in range(3)])


def _winning_plan(pipeline: list[dict]) -> str:
    from django.db import connection

    explained = connection.database.command("aggregate", Kline._meta.db_table, pipeline=pipeline, explain=True)
    return str(explained["queryPlanner"]["winningPlan"])


def _kline_reads(reads: ReadCounter) -> list[tuple[str, dict]]:
    return [(name, command) for name, collection, command in reads.commands if collection == Kline._meta.db_table]


def _assert_index_reads_only(reads: ReadCounter, symbol: str | None, interval: str | None) -> None:
    sent = _kline_reads(reads)
    assert sent
    for name, command in sent:
        assert name == "aggregate", f"{name}: {command}"  # no count, no distinct, no find over the collection
        pipeline = command["pipeline"]
        first = pipeline[0]["$match"]
        assert "$and" not in first and {"symbol", "interval"} <= set(first), pipeline  # the index prefix
        assert symbol is None or first["symbol"] == symbol
        assert interval is None or first["interval"] == interval
        plan = _winning_plan(pipeline)
        assert "IXSCAN" in plan and "COLLSCAN" not in plan, f"{pipeline} -> {plan}"


@pytest.mark.django_db(transaction=True)
def test_filtered_list_reads_the_index_only_and_pages_by_cursor(
    admin_client_mongo: Client, record: None, mongo_reads: ReadCounter
) -> None:
    newest_first = [closed_kline("BTCUSDT", offset).open_time for offset in reversed(range(250))]
    mongo_reads.commands.clear()
    response = admin_client_mongo.get(CHANGELIST, {"symbol": "BTCUSDT", "interval": "1m"})
    assert response.status_code == 200
    _assert_index_reads_only(mongo_reads, "BTCUSDT", "1m")
    seen = []
    while True:
        cl = response.context["cl"]
        assert {(row.symbol, row.interval) for row in cl.result_list} == {("BTCUSDT", "1m")}
        seen += [row.open_time for row in cl.result_list]
        if not cl.older_link:
            break
        assert "Older" in response.content.decode()
        mongo_reads.commands.clear()
        response = admin_client_mongo.get(CHANGELIST + cl.older_link)
        assert response.status_code == 200
        _assert_index_reads_only(mongo_reads, "BTCUSDT", "1m")
    assert seen == newest_first  # 100 + 100 + 50, none twice, none missed
    back = admin_client_mongo.get(CHANGELIST + response.context["cl"].newer_link).context["cl"]
    assert [row.open_time for row in back.result_list] == newest_first[100:200]
    assert back.newer_link and back.older_link


@pytest.mark.django_db(transaction=True)
def test_unfiltered_list_merges_the_recorded_streams_from_the_index(
    admin_client_mongo: Client, record: None, mongo_reads: ReadCounter
) -> None:
    """Ties on open time (every symbol's kline of a minute) neither repeat nor vanish at a page boundary."""
    expected = sorted(
        ((closed_kline(s, o).open_time, s) for s, n in (("BTCUSDT", 250), ("ETHUSDT", 30)) for o in range(n)),
        reverse=True,
    )
    mongo_reads.commands.clear()
    response = admin_client_mongo.get(CHANGELIST)
    _assert_index_reads_only(mongo_reads, None, "1m")  # the configured interval; 5m is not recorded here
    seen = []
    while True:
        cl = response.context["cl"]
        seen += [(row.open_time, row.symbol) for row in cl.result_list]
        if not cl.older_link:
            break
        response = admin_client_mongo.get(CHANGELIST + cl.older_link)
    assert seen == expected
    pages = [[(row.open_time, row.symbol) for row in cl.result_list]]
    while cl.newer_link:  # and back up to the newest page, through the same ties
        cl = admin_client_mongo.get(CHANGELIST + cl.newer_link).context["cl"]
        pages.insert(0, [(row.open_time, row.symbol) for row in cl.result_list])
    assert [row for page in pages for row in page] == expected and len(pages[0]) == 100


@pytest.mark.django_db(transaction=True)
def test_unrecorded_interval_date_drill_down_and_detail(
    admin_client_mongo: Client, record: None, mongo_reads: ReadCounter
) -> None:
    five = admin_client_mongo.get(CHANGELIST, {"symbol": "BTCUSDT", "interval": "5m"}).context["cl"]
    assert [row.open_time for row in five.result_list] == [
        closed_kline("BTCUSDT", o, "5m").open_time for o in (2, 1, 0)
    ]
    day = closed_kline("BTCUSDT", 0).open_time
    mongo_reads.commands.clear()
    response = admin_client_mongo.get(
        CHANGELIST,
        {"symbol": "ETHUSDT", "interval": "1m", "open_time__year": day.year, "open_time__month": day.month},
    )
    _assert_index_reads_only(mongo_reads, "ETHUSDT", "1m")
    assert len(response.context["cl"].result_list) == 30
    assert f"open_time__day={day.day}" in response.content.decode()
    row = response.context["cl"].result_list[0]
    mongo_reads.commands.clear()
    assert admin_client_mongo.get(f"{CHANGELIST}{row.pk}/change/").status_code == 200
    for _, command in _kline_reads(mongo_reads):
        assert "_id" in command["pipeline"][0]["$match"] and "COLLSCAN" not in _winning_plan(command["pipeline"])


@pytest.mark.django_db(transaction=True)
def test_a_forged_cursor_is_refused_with_the_error_page(admin_client_mongo: Client) -> None:
    response = admin_client_mongo.get(CHANGELIST, {"before": "yesterday"})
    assert response.status_code == 302 and response["Location"].endswith("?e=1")


def test_cursor_token_round_trip() -> None:
    cursor = Cursor(datetime(2025, 11, 25, 10, 2, tzinfo=UTC), "BTCUSDT", "1m")
    assert Cursor.parse(cursor.token()) == cursor
    for bad in ("1764064920000.BTCUSDT", "x.BTCUSDT.1m", "1764064920000.BTC-USDT.1m", "1764064920000.BTCUSDT.7m"):
        with pytest.raises(ValueError):
            Cursor.parse(bad)


def test_date_window_and_drill_down_from_the_oldest_and_newest_open_times() -> None:
    assert date_window("2025", "12", None).until == datetime(2026, 1, 1, tzinfo=UTC)
    assert date_window("2025", "2", "28").until == datetime(2025, 3, 1, tzinfo=UTC)
    first, last = datetime(2024, 11, 30, tzinfo=UTC), datetime(2025, 2, 3, tzinfo=UTC)
    link = str
    assert [c["title"] for c in drilldown({}, first, last, link)["choices"]] == ["2024", "2025"]
    months = drilldown({"open_time__year": "2025"}, first, last, link)["choices"]
    assert [c["title"] for c in months] == ["January 2025", "February 2025"]
    days = drilldown({"open_time__year": "2025", "open_time__month": "2"}, first, last, link)["choices"]
    assert [c["title"] for c in days] == ["February 1", "February 2", "February 3"]
    assert drilldown({}, None, None, link) == {"show": False}


@pytest.mark.django_db(transaction=True)
def test_more_streams_than_one_list_merges_asks_for_a_filter(
    admin_client_mongo: Client, settings, mongo_reads: ReadCounter
) -> None:
    settings.BINANCEWS = dataclasses.replace(settings.BINANCEWS, symbols=tuple(f"c{i}usdt" for i in range(61)))
    mongo_reads.commands.clear()
    response = admin_client_mongo.get(CHANGELIST)
    assert response.context["cl"].result_list == []
    assert "filter by symbol or interval" in response.content.decode()
    assert not _kline_reads(mongo_reads)
    assert "C60USDT" in response.content.decode()  # offered as a filter
