"""KLINE_SYMBOLS=all, pure: the listing's trading perpetuals, and which connections change when it changes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from klines.binance.listing import tradable_perpetuals
from klines.binance.parse import MalformedMessage
from klines.ingest.plan import replan
from klines.simexchange.exchange_info import exchange_info


def test_only_trading_perpetuals_are_recorded() -> None:
    info = exchange_info([("BTCUSDT", Decimal("0.1")), ("ETHUSDT", Decimal("0.01"))], server_ms=0, delisted=["ETHUSDT"])
    info["symbols"].append({**info["symbols"][0], "symbol": "BTCUSDT_261225", "contractType": "CURRENT_QUARTER"})
    assert tradable_perpetuals(info) == ("BTCUSDT",)


def test_an_answer_without_symbols_is_malformed() -> None:
    with pytest.raises(MalformedMessage):
        tradable_perpetuals({"code": -1000, "msg": "busy"})


def test_a_new_listing_gets_a_connection_of_its_own_and_the_others_go_on() -> None:
    connections = [[("BTCUSDT", "1m"), ("BTCUSDT", "5m")], [("ETHUSDT", "1m"), ("ETHUSDT", "5m")]]
    plan = replan(connections, ["BTCUSDT", "ETHUSDT"], ["BTCUSDT", "ETHUSDT", "NEWUSDT"], ["1m", "5m"], 2)
    assert (plan.keep, plan.retire, plan.added, plan.gone) == ((0, 1), (), ("NEWUSDT",), ())
    assert plan.open == ((("NEWUSDT", "1m"), ("NEWUSDT", "5m")),)


def test_a_delisted_symbol_s_connection_is_replaced_by_one_without_it() -> None:
    connections = [[("BTCUSDT", "1m"), ("OLDUSDT", "1m"), ("ETHUSDT", "1m")], [("XRPUSDT", "1m")]]
    plan = replan(
        connections, ["BTCUSDT", "OLDUSDT", "ETHUSDT", "XRPUSDT"], ["BTCUSDT", "ETHUSDT", "XRPUSDT"], ["1m"], 3
    )
    assert (plan.keep, plan.retire, plan.gone) == ((1,), (0,), ("OLDUSDT",))
    assert plan.open == ((("BTCUSDT", "1m"), ("ETHUSDT", "1m")),)


def test_an_unchanged_listing_changes_nothing() -> None:
    plan = replan([[("BTCUSDT", "1m")]], ["BTCUSDT"], ["BTCUSDT"], ["1m"], 10)
    assert (plan.keep, plan.retire, plan.open, plan.added, plan.gone) == ((0,), (), (), (), ())
