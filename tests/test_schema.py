"""Every place that writes out the kline's fields agrees with klines/binance/schema.py.

The parsers derive their fields from the schema; the rest (the model, the parsed and
stored types, the REST row, the stream event, the simulator, the bench's seeding)
stay written out for speed or to be read, and are compared here with the schema. A
kline whose every value differs from the others goes through each place, so a field
missing, added or swapped in one place fails a test.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, get_type_hints

from bson.decimal128 import Decimal128

from bench.bulkseed import documents
from klines.api.rows import StoredKline, kline_row
from klines.api.stream_events import EventKline, kline_event
from klines.binance.parse import ClosedKline, datetime_to_ms, ms_to_datetime, parse_kline_object, parse_rest_row
from klines.binance.schema import (
    DECIMAL,
    IDENTITY,
    IDENTITY_KEYS,
    IGNORE,
    IGNORE_VALUE,
    INT,
    KLINE_FIELDS,
    MODEL_ORDER,
    ROW_FIELDS,
    STREAM_KEYS,
    TIME,
    KlineField,
)
from klines.events import kline_from_message, kline_to_message
from klines.models import Kline
from klines.simexchange.series import SimKline
from klines.store.records import KlineRecord, record_from_document

STORED = tuple(f.name for f in KLINE_FIELDS)


def distinct_kline() -> ClosedKline:
    """A kline whose every value differs from the others (decimals with a trailing zero, kept as written)."""
    values: dict[str, Any] = {}
    for i, field in enumerate(KLINE_FIELDS, start=1):
        if field.kind == TIME:
            values[field.name] = ms_to_datetime(1_764_064_800_000 + i * 1000)
        elif field.kind == DECIMAL:
            values[field.name] = Decimal(f"{i}.{i}0")
        else:
            values[field.name] = 1000 + i
    return ClosedKline(**{"symbol": "BTCUSDT", "interval": "1m", **values})


def wire(field: KlineField, kline: Any) -> Any:
    """The field's value as Binance writes it, from the schema alone."""
    if field.kind == IGNORE.kind:
        return IGNORE_VALUE
    value = getattr(kline, field.name)
    if field.kind == TIME:
        return datetime_to_ms(value)
    if field.kind == DECIMAL:
        return format(value, "f")
    return value


def test_the_schema_is_binances_row_of_twelve_with_one_stream_key_each() -> None:
    assert [f.row for f in ROW_FIELDS] == list(range(12))
    assert len({f.name for f in ROW_FIELDS}) == len({f.key for f in ROW_FIELDS}) == 12
    assert {f.key for f in ROW_FIELDS} | set(IDENTITY_KEYS) <= set(STREAM_KEYS)
    assert sorted(MODEL_ORDER) == sorted((*IDENTITY, *STORED))


def test_the_model_has_the_schemas_fields_in_its_order_and_kinds() -> None:
    fields = [f for f in Kline._meta.concrete_fields if f.name not in ("id", "stored_at")]
    assert [f.name for f in fields] == list(MODEL_ORDER)
    kinds = {"DateTimeField": TIME, "DecimalField": DECIMAL, "BigIntegerField": INT}
    assert {f.name: kinds.get(f.get_internal_type()) for f in fields[len(IDENTITY) :]} == {
        f.name: f.kind for f in KLINE_FIELDS
    }


def test_the_parsed_and_the_stored_kline_types_have_the_schemas_fields_in_its_order() -> None:
    # The parsers pass ClosedKline's fields positionally, in MODEL_ORDER.
    assert tuple(ClosedKline.__dataclass_fields__) == MODEL_ORDER
    assert KlineRecord._fields == (*MODEL_ORDER, "stored_at")
    assert set(get_type_hints(StoredKline)) == set(STORED)
    assert set(get_type_hints(EventKline)) == set(MODEL_ORDER)


def test_the_rest_row_is_the_schemas_columns() -> None:
    kline = distinct_kline()
    assert kline_row(kline) == [wire(f, kline) for f in ROW_FIELDS]
    assert parse_rest_row(json.loads(json.dumps(kline_row(kline))), symbol="btcusdt", interval="1m") == kline


def test_the_stream_event_has_binances_keys_in_order_with_the_schemas_values() -> None:
    kline = distinct_kline()
    k = kline_event(kline, closed=True, event_ms=1)["k"]
    assert tuple(k) == STREAM_KEYS
    assert {f.key: k[f.key] for f in ROW_FIELDS} == {f.key: wire(f, kline) for f in ROW_FIELDS}
    assert (k["s"], k["i"]) == (kline.symbol, kline.interval)
    assert parse_kline_object(json.loads(json.dumps(k))) == kline


def test_a_stored_document_of_the_schemas_fields_reads_back_field_for_field() -> None:
    kline = distinct_kline()
    stored_at = datetime(2026, 1, 1, tzinfo=UTC)
    document: dict[str, Any] = {"_id": 1, "symbol": kline.symbol, "interval": kline.interval, "stored_at": stored_at}
    for field in KLINE_FIELDS:
        value = getattr(kline, field.name)
        if field.kind == TIME:
            value = value.replace(tzinfo=None)  # pymongo gives naive UTC
        elif field.kind == DECIMAL:
            value = Decimal128(value)
        document[field.name] = value
    assert record_from_document(document) == (*(getattr(kline, n) for n in MODEL_ORDER), stored_at)


def test_the_channel_layer_message_carries_every_field() -> None:
    kline = distinct_kline()
    message = kline_to_message(kline)
    assert set(message) == {"type", *MODEL_ORDER}
    assert kline_from_message(message) == kline


def sim_name(field: KlineField) -> str:
    """SimKline keeps times as ms: ``open_time`` -> ``open_ms``."""
    return field.name.replace("_time", "_ms") if field.kind == TIME else field.name


def test_the_simulators_rows_and_events_are_the_schemas() -> None:
    values = {sim_name(f): (f.row * 1000 if f.kind in (TIME, INT) else f"{f.row}.{f.row}0") for f in KLINE_FIELDS}
    sim = SimKline(symbol="BTCUSDT", interval="1m", **values)
    row, k = sim.rest_row(), sim.stream_k(closed=True)
    assert row == [IGNORE_VALUE if f is IGNORE else values[sim_name(f)] for f in ROW_FIELDS]
    assert tuple(k) == STREAM_KEYS
    assert {f.key: k[f.key] for f in ROW_FIELDS} == {f.key: row[f.row] for f in ROW_FIELDS}
    assert parse_rest_row(row, symbol="BTCUSDT", interval="1m") == parse_kline_object(k)


def test_the_bench_seeds_documents_of_the_schemas_fields_and_kinds() -> None:
    document = next(documents("BTCUSDT", "1m", datetime(2026, 1, 1, tzinfo=UTC), 1))
    assert list(document) == [*MODEL_ORDER, "stored_at"]
    kinds = {datetime: TIME, Decimal128: DECIMAL, int: INT}
    assert {f.name: kinds[type(document[f.name])] for f in KLINE_FIELDS} == {f.name: f.kind for f in KLINE_FIELDS}


def test_the_archive_csv_reads_the_schemas_columns() -> None:
    """Binance's archive CSV has the REST row's columns: its header names each, and its kinds are the schema's."""
    from klines.binance import archive_csv
    from klines.binance.schema import DECIMAL, ROW_FIELDS

    assert len(archive_csv.HEADER) == len(ROW_FIELDS)
    assert archive_csv.HEADER[0] == "open_time" and archive_csv.HEADER[-1] == "ignore"
    assert tuple(f.row for f in ROW_FIELDS if f.kind == DECIMAL) == archive_csv.DECIMAL_COLUMNS
    assert archive_csv.DECIMAL_COLUMNS == (1, 2, 3, 4, 5, 7, 9, 10)
    assert archive_csv.INTEGER_COLUMNS == (0, 6, 8)
