"""Parquet: one file per (symbol, interval), typed columns, written batch by batch.

Open and close times are UTC timestamps (milliseconds), prices and volumes
``decimal128(30, 12)`` (the model's ``DecimalField``: exact, every stored digit
kept), the trade count ``int64``. pandas, polars and DuckDB read it without
options. Rows are in open-time order and row groups hold :data:`ROW_GROUP`
klines each, with min/max statistics, so a reader asking for a time range
skips the row groups outside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from klines.store.records import KlineRecord

ROW_GROUP = 44_640  # a 31-day month of 1m klines: a range read touches about one row group a month
DECIMAL = pa.decimal128(30, 12)  # klines.models.PRICE
TIME = pa.timestamp("ms", tz="UTC")
DECIMALS = ("open", "high", "low", "close", "volume", "quote_volume", "taker_buy_base_volume", "taker_buy_quote_volume")
SCHEMA = pa.schema(
    [
        ("symbol", pa.dictionary(pa.int8(), pa.string())),
        ("interval", pa.dictionary(pa.int8(), pa.string())),
        ("open_time", TIME),
        ("close_time", TIME),
        *((name, DECIMAL) for name in DECIMALS[:6]),
        ("trades", pa.int64()),
        *((name, DECIMAL) for name in DECIMALS[6:]),
    ]
)


def record_batch(records: Sequence[KlineRecord]) -> pa.RecordBatch:
    """``records`` (one symbol and interval) as a batch of :data:`SCHEMA`."""
    columns = list(zip(*records, strict=True)) if records else [() for _ in KlineRecord._fields]
    by_name = dict(zip(KlineRecord._fields, columns, strict=True))
    arrays = []
    for field in SCHEMA:
        if field.name in ("symbol", "interval"):
            arrays.append(pa.array(by_name[field.name], pa.string()).dictionary_encode().cast(field.type))
        else:
            arrays.append(pa.array(by_name[field.name], field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=SCHEMA)


class ParquetOut:
    """A Parquet file written in row groups of :data:`ROW_GROUP`; only one row group's batches are held."""

    def __init__(self, path: Path, *, row_group: int | None = None) -> None:
        self.row_group = row_group or ROW_GROUP
        self.pending: list[pa.RecordBatch] = []
        self.rows = 0
        self.writer = pq.ParquetWriter(path, SCHEMA, compression="zstd", write_statistics=True)

    def write(self, records: Sequence[KlineRecord]) -> None:
        if not records:
            return
        self.pending.append(record_batch(records))
        self.rows += len(records)
        if self.rows >= self.row_group:
            self._flush()

    def _flush(self, *, last: bool = False) -> None:
        """Write the full row groups held (with ``last``, the rest too); keep the remainder."""
        table = pa.Table.from_batches(self.pending, schema=SCHEMA)
        full = table.num_rows if last else table.num_rows // self.row_group * self.row_group
        if full:
            self.writer.write_table(table.slice(0, full), row_group_size=self.row_group)
        rest = table.slice(full)
        self.pending, self.rows = rest.to_batches(), rest.num_rows

    def close(self) -> None:
        """Write what is held and the footer."""
        if self.rows:
            self._flush(last=True)
        self.writer.close()

    def abort(self) -> None:
        """Close the file without the held rows (it is removed by the caller)."""
        self.writer.close()
