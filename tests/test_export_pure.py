"""The export's pure parts: freqtrade's pair and file names, the holes of a range fed batch by batch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from klines.export.freqtrade import assets, pair_of, relative_path
from klines.export.plan import HoleFinder

MINUTE = 60_000


def test_freqtrade_names_pairs_from_exchange_info_and_files_as_freqtrade_does() -> None:
    info = json.dumps(
        {"symbols": [{"symbol": "ETHBTC", "baseAsset": "ETH", "quoteAsset": "BTC", "marginAsset": "BTC"}, {"x": 1}]}
    )
    known = assets(info)
    assert pair_of("ethbtc", known) == "ETH/BTC:BTC"
    assert pair_of("1000PEPEUSDT", known) == "1000PEPE/USDT:USDT"  # no exchangeInfo entry: the quote suffix
    assert pair_of("BTCUSDC", {}) == "BTC/USDC:USDC"
    assert relative_path("BTC/USDT:USDT", "1m") == Path("futures/BTC_USDT_USDT-1m-futures.feather")
    assert relative_path("BTC/USDT:USDT", "1M") == Path("futures/BTC_USDT_USDT-1Mo-futures.feather")
    with pytest.raises(ValueError, match="cannot tell the base and quote asset of BTCEUR"):
        pair_of("btceur", known)
    assert assets("not json") == {} and assets(None) == {}


def test_holes_are_found_across_batches_at_both_ends_and_not_where_the_exchange_had_none() -> None:
    finder = HoleFinder(0, 20 * MINUTE, MINUTE, known=[(12 * MINUTE, 13 * MINUTE)])
    finder.feed([2 * MINUTE, 3 * MINUTE])  # 0 and 1 missing: a leading hole
    finder.feed([5 * MINUTE])  # 4 missing, between two batches
    finder.feed([11 * MINUTE, 14 * MINUTE])  # 6..10 missing; 12 and 13 the exchange's own gap
    holes = finder.finish()  # 15..19 missing at the end
    assert [(h.first_ms // MINUTE, h.last_ms // MINUTE, h.missing) for h in holes] == [
        (0, 1, 2),
        (4, 4, 1),
        (6, 10, 5),
        (15, 19, 5),
    ]


def test_an_empty_range_is_one_hole() -> None:
    holes = HoleFinder(0, 3 * MINUTE, MINUTE).finish()
    assert [(h.first_ms, h.missing) for h in holes] == [(0, 3)]
