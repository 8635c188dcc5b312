"""Pure: read the klines of one archive zip, in batches, into :class:`ClosedKline` exactly as REST would give them.

Binance's kline CSVs have 12 columns, as a REST row::

    open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore

Older files have no header row; newer ones start with the line above. Both are read.

Times: USD-M futures files give ``open_time`` in milliseconds, as REST does. Binance's
*spot* files switched to microseconds in 2025; a file whose times are not milliseconds
inside the file's own dates is refused (:class:`ArchiveError`) rather than stored with
wrong dates.

Decimals: futures CSVs write each value with the symbol's fixed places, trailing
zeros kept, as ``/fapi/v1/klines`` does for the same kline (BTCUSDT
``95261.80,...,180.760,...,17214864.01220``: price at its 2 places, base volume at 3,
quote volume at 5, in archive rows and in REST answers alike). :func:`decimal_text`
is the one place archive text becomes REST text: the digits as written, and any
exponent form written out positionally. The row then goes through
:func:`parse_rest_row`, the very parser of REST rows, so an archived kline is
stored as the REST one is.
"""

from __future__ import annotations

import csv
import io
import zipfile
import zlib
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

from klines.binance.archive import ArchiveFile, midnight
from klines.binance.parse import PLAIN_DECIMAL, ClosedKline, MalformedMessage, datetime_to_ms, parse_rest_row
from klines.binance.schema import DECIMAL, INT, ROW_FIELDS, TIME

HEADER = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "ignore",
)
# Binance's own names for the archive's columns (its header row), one per column of the kline schema
# (tests/test_schema.py checks the two agree); the columns' kinds come from the schema.
DECIMAL_COLUMNS = tuple(f.row for f in ROW_FIELDS if f.kind == DECIMAL)
INTEGER_COLUMNS = tuple(f.row for f in ROW_FIELDS if f.kind in (TIME, INT))
BATCH = 10_000  # klines per batch: ~10 MB of Python objects at most


class ArchiveError(ValueError):
    """An archive file that cannot be used (corrupt zip, wrong time unit, a row that does not parse)."""


def decimal_text(text: str) -> str:
    """An archive decimal as REST writes it: as written (trailing zeros kept), exponent forms written out.

    ``"0.01000000"`` stays ``"0.01000000"``; ``"1E-8"`` becomes ``"0.00000001"``, ``"1.50e+3"`` ``"1500"``.
    """
    text = text.strip()
    if PLAIN_DECIMAL.fullmatch(text):
        return text
    try:
        number = Decimal(text)
    except InvalidOperation:
        return text  # parse_rest_row names the column
    return format(number, "f") if number.is_finite() else text


def rest_row(fields: list[str]) -> list[Any]:
    """One CSV row as the row ``/fapi/v1/klines`` answers (integers as numbers, decimals as REST's text)."""
    if len(fields) < 11:
        raise MalformedMessage(f"{len(fields)} columns, expected 12", kind="row")
    row: list[Any] = list(fields[:12])
    for column in INTEGER_COLUMNS:
        text = fields[column].strip()
        if not text.isdigit():
            raise MalformedMessage(f"column {HEADER[column]} is not an integer: {text[:40]!r}", kind=HEADER[column])
        row[column] = int(text)
    for column in DECIMAL_COLUMNS:
        row[column] = decimal_text(fields[column])
    return row


def check_time_unit(open_ms: int, file: ArchiveFile) -> None:
    """Refuse a file whose first ``open_time`` is not a millisecond inside the file's own dates."""
    first, end = datetime_to_ms(midnight(file.start)), datetime_to_ms(midnight(file.end))
    if first <= open_ms < end:
        return
    if first <= open_ms // 1000 < end:
        unit = "microseconds"
    elif first <= open_ms * 1000 < end:
        unit = "seconds"
    else:
        raise ArchiveError(f"{file.name}: open_time {open_ms} is outside the file's dates")
    raise ArchiveError(f"{file.name}: open_time {open_ms} is in {unit}, not milliseconds; refusing the file")


def read_klines(
    source: str | Path | IO[bytes], file: ArchiveFile, *, batch: int = BATCH
) -> Iterator[list[ClosedKline]]:
    """The klines of the zip at ``source``, ``batch`` at a time, oldest first as written.

    Streams the CSV member (bounded memory). :class:`ArchiveError` for a corrupt or
    truncated zip, a file in another time unit, or a row that does not parse.
    """
    try:
        with zipfile.ZipFile(source) as archive:
            members = [m for m in archive.namelist() if m.endswith(".csv")]
            if len(members) != 1:
                raise ArchiveError(f"{file.name}: expected one .csv inside, found {len(members)}")
            with archive.open(members[0]) as raw:
                yield from _batches(io.TextIOWrapper(raw, encoding="ascii", newline=""), file, batch)
    except (zipfile.BadZipFile, zlib.error, EOFError, UnicodeDecodeError) as exc:
        raise ArchiveError(f"{file.name}: corrupt zip ({type(exc).__name__}: {exc})") from None


def _batches(text: IO[str], file: ArchiveFile, batch: int) -> Iterator[list[ClosedKline]]:
    pending: list[ClosedKline] = []
    checked = False
    for line, fields in enumerate(csv.reader(text), start=1):
        if not fields or (line == 1 and fields[0].strip() == HEADER[0]):
            continue
        try:
            row = rest_row(fields)
            if not checked:
                check_time_unit(row[0], file)
                checked = True
            kline = parse_rest_row(row, symbol=file.symbol, interval=file.interval)
        except MalformedMessage as exc:
            raise ArchiveError(f"{file.name} line {line}: {exc}") from None
        pending.append(kline)
        if len(pending) >= batch:
            yield pending
            pending = []
    if pending:
        yield pending
