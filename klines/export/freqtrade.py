"""freqtrade's data directory for Binance futures: ``futures/BTC_USDT_USDT-1m-futures.feather``.

What ``freqtrade backtesting --datadir DIR`` reads with its default data format
(``feather``, :mod:`freqtrade.data.history.datahandlers.featherdatahandler`):
an Arrow IPC (Feather v2) file, lz4-compressed, of the columns ``date``
(the open time, UTC), ``open``, ``high``, ``low``, ``close`` and ``volume``
(the base volume), the prices as ``float64``, oldest first. The pair is ccxt's
linear-futures name ``BASE/QUOTE:SETTLE``, and the file name is that pair with
``/`` and ``:`` as ``_``, the timeframe (``1M`` as ``1Mo``) and the candle type.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

from klines.store.records import KlineRecord

CANDLE_TYPE = "futures"
QUOTES = ("USDT", "USDC", "BUSD", "FDUSD")  # when no exchangeInfo is kept: the settle asset is the quote
SCHEMA = pa.schema(
    [
        ("date", pa.timestamp("ms", tz="UTC")),
        ("open", pa.float64()),
        ("high", pa.float64()),
        ("low", pa.float64()),
        ("close", pa.float64()),
        ("volume", pa.float64()),
    ]
)


def assets(exchange_info: str | None) -> dict[str, tuple[str, str, str]]:
    """Symbol -> (base, quote, margin asset) from an ``exchangeInfo`` body (empty without one)."""
    try:
        entries = json.loads(exchange_info).get("symbols", []) if exchange_info else []
    except (ValueError, AttributeError):
        return {}
    return {
        e["symbol"].upper(): (e["baseAsset"], e["quoteAsset"], e.get("marginAsset") or e["quoteAsset"])
        for e in entries
        if isinstance(e, dict) and all(isinstance(e.get(k), str) for k in ("symbol", "baseAsset", "quoteAsset"))
    }


def pair_of(symbol: str, known: Mapping[str, tuple[str, str, str]]) -> str:
    """ccxt's futures pair of ``symbol`` (``BTCUSDT`` -> ``BTC/USDT:USDT``); ValueError if it cannot be told."""
    symbol = symbol.upper()
    if symbol in known:
        base, quote, settle = known[symbol]
        return f"{base}/{quote}:{settle}"
    for quote in QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return f"{symbol.removesuffix(quote)}/{quote}:{quote}"
    raise ValueError(f"cannot tell the base and quote asset of {symbol}: no exchangeInfo kept lists it")


def relative_path(pair: str, interval: str) -> Path:
    """``futures/BTC_USDT_USDT-1m-futures.feather`` for ``BTC/USDT:USDT``, as freqtrade names it."""
    name = pair
    for character in "/ .@$+:":
        name = name.replace(character, "_")
    return Path(CANDLE_TYPE) / f"{name}-{interval.replace('M', 'Mo')}-{CANDLE_TYPE}.feather"


def record_batch(records: Sequence[KlineRecord]) -> pa.RecordBatch:
    """``records`` as freqtrade's candle columns (prices as the nearest ``float64``)."""
    return pa.RecordBatch.from_arrays(
        [
            pa.array([r.open_time for r in records], SCHEMA.field("date").type),
            *(pa.array([float(getattr(r, name)) for r in records], pa.float64()) for name in SCHEMA.names[1:]),
        ],
        schema=SCHEMA,
    )


class FeatherOut:
    """freqtrade's feather file, written batch by batch (an Arrow IPC file: one record batch per read batch)."""

    def __init__(self, path: Path) -> None:
        self.sink = pa.OSFile(str(path), "wb")
        self.writer = ipc.new_file(self.sink, SCHEMA, options=ipc.IpcWriteOptions(compression="lz4"))

    def write(self, records: Sequence[KlineRecord]) -> None:
        if records:
            self.writer.write_batch(record_batch(records))

    def close(self) -> None:
        self.writer.close()
        self.sink.close()

    def abort(self) -> None:
        self.close()
