"""Pure: a Binance-shaped ``GET /fapi/v1/exchangeInfo`` for the simulated exchange's symbols.

Field for field as Binance's USD-M answer (rate limits, assets, one entry per
contract with its filters), so clients that load markets first (ccxt,
python-binance) parse it. ``extra_symbols`` adds made-up perpetual contracts,
e.g. ~500 for ``KLINE_SYMBOLS=all`` offline; ``delisted`` ones are listed with
status ``SETTLING``, as Binance lists a contract it is closing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

QUOTE = "USDT"
ONBOARD_MS = 1_569_398_400_000  # 2019-09-25, BTCUSDT's listing
PERPETUAL_DELIVERY_MS = 4_133_404_800_000  # Binance's "never" for perpetuals (2100-12-25)
RATE_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
    {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
]
ORDER_TYPES = ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"]


def made_up_symbols(count: int) -> list[str]:
    """``count`` made-up perpetual symbols: ``SIM000USDT``, ``SIM001USDT``, ..."""
    return [f"SIM{i:03d}{QUOTE}" for i in range(count)]


def _places(tick: Decimal) -> int:
    return max(0, -tick.as_tuple().exponent)  # type: ignore[operator]


def symbol_entry(symbol: str, tick: Decimal, *, status: str = "TRADING") -> dict[str, Any]:
    base = symbol.removesuffix(QUOTE)
    tick_text = format(tick, "f")
    return {
        "symbol": symbol,
        "pair": symbol,
        "contractType": "PERPETUAL",
        "deliveryDate": PERPETUAL_DELIVERY_MS,
        "onboardDate": ONBOARD_MS,
        "status": status,
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": base,
        "quoteAsset": QUOTE,
        "marginAsset": QUOTE,
        "pricePrecision": _places(tick),
        "quantityPrecision": 3,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "settlePlan": 0,
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "maxMoveOrderLimit": 10000,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": tick_text, "maxPrice": "1000000", "tickSize": tick_text},
            {"filterType": "LOT_SIZE", "stepSize": "0.001", "maxQty": "1000", "minQty": "0.001"},
            {"filterType": "MARKET_LOT_SIZE", "stepSize": "0.001", "maxQty": "120", "minQty": "0.001"},
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
            {"filterType": "MIN_NOTIONAL", "notional": "5"},
            {
                "filterType": "PERCENT_PRICE",
                "multiplierUp": "1.0500",
                "multiplierDown": "0.9500",
                "multiplierDecimal": "4",
            },
        ],
        "orderTypes": ORDER_TYPES,
        "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
    }


def exchange_info(
    ticks: Sequence[tuple[str, Decimal]], *, server_ms: int, delisted: Iterable[str] = ()
) -> dict[str, Any]:
    """The whole ``exchangeInfo`` answer for ``(symbol, tick size)`` pairs."""
    closing = {s.upper() for s in delisted}
    return {
        "timezone": "UTC",
        "serverTime": server_ms,
        "futuresType": "U_MARGINED",
        "rateLimits": RATE_LIMITS,
        "exchangeFilters": [],
        "assets": [{"asset": QUOTE, "marginAvailable": True, "autoAssetExchange": "-10000"}],
        "symbols": [
            symbol_entry(symbol, tick, status="SETTLING" if symbol in closing else "TRADING") for symbol, tick in ticks
        ],
    }
