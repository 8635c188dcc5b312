"""Reading klines without the model: the same decimals, rows, frames and events as Django's model gave.

The conversion is checked alone (against bson's own ``to_decimal``, over tricky
values and random bit patterns), then end to end: documents with those values
stored in a real SecantusDB are read through the store and through the model,
and what clients would receive from either is compared byte for byte.
"""

from __future__ import annotations

import json
import random
from datetime import timedelta
from decimal import Decimal

import pytest
from bson.decimal128 import Decimal128
from django.db import connection
from django.db.models.signals import post_init

from klines.api.rows import kline_row
from klines.api.stream_events import encode, kline_event
from klines.models import Kline
from klines.serving.payloads import build_payload, encode_frame
from klines.store import pipelines
from klines.store.reads import klines_page, klines_stored_since, last_klines
from klines.store.records import KlineRecord, decimal_from_bson, record_from_document
from tests.helpers import ZONE, closed_kline

# Exponent forms, zeros of every sign and scale, trailing zeros, 34 digits, the exponent range's ends.
TRICKY = [
    "0",
    "-0",
    "0E-8",
    "-0E-8",
    "0.00000000",
    "0E+3",
    "1E+2",
    "1.000E+2",
    "-1E+2",
    "100",
    "100.10000000",
    "0.00000010",
    "65000.1",
    "-42.5",
    "1E-12",
    "1E-30",
    "1E+30",
    "0.30000000000000000001",
    "3.141592653589793238462643383279502",
    "1234567890123456789012345678901234",
    "-9999999999999999999999999999999999",
    "9999999999999999999999999999999999E+6111",
    "1E+6111",
    "1E-6176",
    "-1E-6176",
    "0E-6176",
    "0E+6111",
    "123456789012345678901234567890123.4",
    "Infinity",
    "-Infinity",
    "NaN",
]


def same(a: Decimal, b: Decimal) -> bool:
    """The same sign, digits and exponent (``==`` would call ``1E+2`` and ``100`` equal)."""
    return a.as_tuple() == b.as_tuple()


@pytest.mark.parametrize("text", TRICKY)
def test_decimal_from_bson_gives_bsons_own_decimal(text: str) -> None:
    value = Decimal128(text)
    assert same(decimal_from_bson(value), value.to_decimal())
    assert str(decimal_from_bson(value)) == str(value.to_decimal())


def test_decimal_from_bson_matches_bson_over_random_encodings() -> None:
    """Random coefficients (up to 34 digits), exponents over the whole range, both signs; and raw bit patterns
    (infinities, NaNs, non-canonical coefficients among them)."""
    rng = random.Random(16)
    values = []
    for _ in range(3000):
        digits = rng.randint(1, 34)
        coefficient = rng.randrange(10 ** (digits - 1) if digits > 1 else 0, 10**digits)
        sign = rng.choice(("", "-"))
        values.append(Decimal128(f"{sign}{coefficient}E{rng.randint(-6176, 6111)}"))
    values += [Decimal128((rng.getrandbits(64), rng.getrandbits(64))) for _ in range(3000)]
    for value in values:
        expected = value.to_decimal()
        got = decimal_from_bson(value)
        assert same(got, expected) or (got.is_nan() and expected.is_nan() and str(got) == str(expected)), value


def _document(kline, values: dict[str, str], stored_at) -> dict:
    """A stored kline's document (as the ORM writes it), with ``values`` for its decimal fields."""
    fields = {f.attname: f.get_db_prep_save(v, connection) for f, v in _fields(kline)}
    fields.update({name: Decimal128(text) for name, text in values.items()})
    fields["stored_at"] = stored_at
    return fields


def _fields(kline):
    for name, value in kline.as_fields().items():
        yield Kline._meta.get_field(name), value


DECIMALS = ("open", "high", "low", "close", "volume", "quote_volume", "taker_buy_base_volume", "taker_buy_quote_volume")
FINITE = [t for t in TRICKY if Decimal(t).is_finite()]


def _store_tricky_klines() -> list:
    """One BTCUSDT kline per tricky value (in every decimal field in turn), stored a second apart."""
    collection = connection.get_collection(Kline._meta.db_table)
    klines = [closed_kline("BTCUSDT", offset) for offset in range(len(FINITE))]
    for offset, kline in enumerate(klines):
        values = {name: FINITE[(offset + i) % len(FINITE)] for i, name in enumerate(DECIMALS)}
        stored_at = kline.close_time + timedelta(seconds=1)
        collection.insert_one(_document(kline, values, stored_at))
    return klines


def _by_model(pipeline: list[dict]) -> list[Kline]:
    return list(Kline.objects.raw_aggregate(pipeline))


@pytest.mark.django_db(transaction=True)
def test_store_reads_give_what_the_model_gave_byte_for_byte() -> None:
    """The mirror's rows, ``/``'s frames and the streams' events from the store's reads equal the model's."""
    klines = _store_tricky_klines()
    first, last = klines[0].open_time, klines[-1].open_time
    count = len(klines)
    cases = {
        "klines_page": (
            klines_page("BTCUSDT", "1m", start=first, end=last, limit=count),
            _by_model(pipelines.klines_between("BTCUSDT", "1m", first, last, count, newest_first=False)),
        ),
        "last_klines": (
            last_klines("BTCUSDT", "1m", count, now=last + timedelta(minutes=1)),
            _by_model(pipelines.newest_first("BTCUSDT", "1m", count))[::-1],
        ),
        "klines_stored_since": (
            klines_stored_since(first, None, None, 1000)[0],
            _by_model(pipelines.stored_since(first, 1000)),
        ),
    }
    for name, (records, models) in cases.items():
        assert len(records) == len(models) == count, name
        for record, model in zip(records, models, strict=True):
            assert type(record) is KlineRecord
            for field in KlineRecord._fields:
                mine, theirs = getattr(record, field), getattr(model, field)
                assert mine == theirs and type(mine) is type(theirs), (name, field, mine, theirs)
                if isinstance(mine, Decimal):
                    assert same(mine, theirs), (name, field, mine, theirs)
                else:
                    assert getattr(mine, "tzinfo", None) is getattr(theirs, "tzinfo", None), (name, field)
            assert json.dumps(kline_row(record)) == json.dumps(kline_row(model)), name
            assert encode(kline_event(record, closed=True, event_ms=1)) == encode(
                kline_event(model, closed=True, event_ms=1)
            ), name
        for window in (1, 10, count):
            assert encode_frame(build_payload("BTCUSDT", records, ZONE, window)) == encode_frame(
                build_payload("BTCUSDT", models, ZONE, window)
            ), name


@pytest.mark.django_db(transaction=True)
def test_the_serving_sides_reads_build_no_model_instance() -> None:
    """A page of 1,500 once built 1,500 ``Kline`` instances (a tenth of daphne's CPU per page, profiled)."""
    _store_tricky_klines()
    built = []

    def count(sender, **_kwargs) -> None:
        built.append(sender)

    post_init.connect(count, sender=Kline)
    try:
        newest = closed_kline("BTCUSDT", len(FINITE)).open_time
        assert klines_page("BTCUSDT", "1m", start=None, end=newest, limit=1500)
        assert last_klines("BTCUSDT", "1m", now=newest)
        assert klines_stored_since(closed_kline().open_time, "1m", ["BTCUSDT"], 1000)[0]
    finally:
        post_init.disconnect(count, sender=Kline)
    assert built == []


def test_record_from_document_reads_every_field() -> None:
    kline = closed_kline()
    stored_at = kline.close_time + timedelta(seconds=1)
    document = {"_id": "ignored", **_document(kline, {}, stored_at.replace(tzinfo=None))}
    for name in ("open_time", "close_time"):
        document[name] = document[name].replace(tzinfo=None)  # pymongo gives naive UTC
    record = record_from_document(document)
    assert record == KlineRecord(**kline.as_fields(), stored_at=stored_at)
    assert record.open_time.tzinfo is kline.open_time.tzinfo
