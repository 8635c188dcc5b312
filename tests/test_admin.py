"""The Django admin on MongoDB: browse stored klines, read-only."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ObjectDoesNotExist
from django.test import Client

from klines.store.writes import save_kline
from tests.helpers import closed_kline

pytestmark = pytest.mark.django_db(transaction=True)
CHANGELIST = "/admin/klines/kline/"


@pytest.fixture
def admin_client_mongo() -> Client:
    user = User.objects.create_superuser("admin", "admin@example.com", "correct horse battery")
    client = Client()
    client.force_login(user)
    return client


def test_anonymous_user_is_sent_to_the_login_page() -> None:
    response = Client().get(CHANGELIST)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_changelist_lists_klines_newest_first_with_filters(admin_client_mongo: Client) -> None:
    for offset in range(3):
        save_kline(closed_kline("BTCUSDT", offset))
    save_kline(closed_kline("ETHUSDT", 0))
    response = admin_client_mongo.get(CHANGELIST)
    assert response.status_code == 200
    page = response.content.decode()
    assert "4 klines" in page
    columns = ("Symbol", "Interval", "Open time", "Open", "High", "Low", "Close", "Base volume", "Number of trades")
    for column in columns:
        assert f">{column}<" in page or f">{column}</a>" in page
    assert "By symbol" in page and "By interval" in page
    shown = [row.symbol for row in response.context["cl"].result_list]
    times = [row.open_time for row in response.context["cl"].result_list]
    assert times == sorted(times, reverse=True)
    assert set(shown) == {"BTCUSDT", "ETHUSDT"}
    assert 'class="toplinks"' in page and "open_time__year=2025" in page  # the date drill-down
    assert "/admin/klines/kline/add/" not in page  # read-only: no "Add kline"
    newest = closed_kline("BTCUSDT", 2)
    assert f">{format(newest.close.normalize(), 'f')}<" in page  # as Binance wrote it, no padding zeros
    assert "000000<" not in page


def test_filter_by_symbol_and_drill_down_by_date(admin_client_mongo: Client) -> None:
    for offset in range(3):
        save_kline(closed_kline("BTCUSDT", offset))
    save_kline(closed_kline("ETHUSDT", 0))
    kline = closed_kline("ETHUSDT", 0)
    response = admin_client_mongo.get(
        CHANGELIST,
        {
            "symbol": "ETHUSDT",
            "open_time__year": kline.open_time.year,
            "open_time__month": kline.open_time.month,
            "open_time__day": kline.open_time.day,
        },
    )
    assert response.status_code == 200
    assert [row.symbol for row in response.context["cl"].result_list] == ["ETHUSDT"]


def test_search_by_symbol(admin_client_mongo: Client) -> None:
    save_kline(closed_kline("BTCUSDT", 0))
    save_kline(closed_kline("SOLUSDT", 0))
    response = admin_client_mongo.get(CHANGELIST, {"q": "sol"})
    assert [row.symbol for row in response.context["cl"].result_list] == ["SOLUSDT"]


def test_kline_detail_is_view_only(admin_client_mongo: Client) -> None:
    from klines.models import Kline

    save_kline(closed_kline("BTCUSDT", 0))
    row = Kline.objects.get()
    response = admin_client_mongo.get(f"{CHANGELIST}{row.pk}/change/")
    assert response.status_code == 200
    assert "Save" not in response.content.decode()
    assert admin_client_mongo.post(f"{CHANGELIST}{row.pk}/delete/").status_code == 403


@pytest.mark.xfail(
    reason="SecantusDB: $addFields with a nested document replaces instead of merging, so the admin's "
    "user change page fails with 'Permission has no content_type' (works on MongoDB)",
    raises=ObjectDoesNotExist,  # Permission.content_type.RelatedObjectDoesNotExist
    strict=True,  # passes once SecantusDB merges: then drop the mark
)
def test_user_change_page(admin_client_mongo: Client) -> None:
    user = User.objects.get(username="admin")
    assert admin_client_mongo.get(f"/admin/auth/user/{user.pk}/change/").status_code == 200
