"""Pure: Binance-archive files from klines — CSV lines, a deterministic zip streamed as chunks, its ``.CHECKSUM``.

The one writer of archive files: the simulated exchange, the mirror's
``/data/...`` downloads and ``export_klines --format csv`` all build them here,
so equal klines give equal bytes everywhere (and a stable SHA-256). API::

    chunks = archive_chunks(file, batches)   # file: ArchiveFile; batches: iterables of rows
    for chunk in chunks: out.write(chunk)    # bytes, ~64 KiB each, never the whole file at once
    checksum_text(digest, file.name)         # from klines.binance.archive
    archive_checksum(file, batches)          # the .CHECKSUM body, computed streaming

A row is a stored kline (anything :func:`klines.api.rows.kline_row` takes:
``KlineRecord``, ``Kline``, ``ClosedKline``) or a 12-field sequence as REST
answers it; it is written as Binance's CSV writes it: fields joined by ``,``,
``\\n`` line ends, decimals as stored (never exponent form), Binance's header
row first unless ``header=False`` (Binance's files before 2022 have none).

The zip has one member, ``<name>.csv``, deflated at :data:`COMPRESS_LEVEL`
with a fixed date (:data:`DATE_TIME`) and attributes, written by
:mod:`zipfile` to an unseekable sink (so sizes and CRC follow the data in a
data descriptor): no clock, no seek, the same bytes for the same rows.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from klines.api.rows import kline_row
from klines.binance.archive import ArchiveFile, checksum_text
from klines.binance.archive_csv import HEADER

DATE_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip can hold: no clock in the bytes
COMPRESS_LEVEL = 6  # zlib's default
CHUNK_BYTES = 64 * 1024  # a chunk is handed on once this much compressed output is waiting
HEADER_LINE = (",".join(HEADER) + "\n").encode()

Row = Sequence[Any] | Any  # a 12-field REST row, or a stored kline


def csv_line(row: Row) -> str:
    """One CSV line (with its ``\\n``) of a REST row or a stored kline."""
    fields = row if isinstance(row, list | tuple) and not hasattr(row, "open_time") else kline_row(row)
    return ",".join(map(str, fields)) + "\n"


def csv_blocks(batches: Iterable[Iterable[Row]], *, header: bool = True) -> Iterator[bytes]:
    """The CSV text, one block of bytes per batch of rows (the header row first when ``header``)."""
    if header:
        yield HEADER_LINE
    for batch in batches:
        block = "".join(csv_line(row) for row in batch)
        if block:
            yield block.encode("ascii")


class _Sink:
    """An unseekable file for :mod:`zipfile`: collects what it is given until taken."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts, self.size = [], 0
        return data


def zip_chunks(member: str, blocks: Iterable[bytes], *, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """A zip holding ``blocks`` as its one member ``member``, as chunks of bytes (deterministic, streamed)."""
    info = zipfile.ZipInfo(member, date_time=DATE_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info._compresslevel = COMPRESS_LEVEL  # type: ignore[attr-defined]  # a property over compress_level in 3.13
    info.create_system = 3  # Unix, whatever the platform
    info.external_attr = 0o644 << 16
    sink = _Sink()
    with zipfile.ZipFile(sink, "w") as archive, archive.open(info, "w") as out:  # type: ignore[arg-type]
        for block in blocks:
            out.write(block)
            if sink.size >= chunk_bytes:
                yield sink.take()
    yield sink.take()


def member_name(file: ArchiveFile) -> str:
    """The CSV inside ``file``'s zip, as Binance names it: ``BTCUSDT-1m-2024-01.csv``."""
    return file.name.removesuffix(".zip") + ".csv"


def archive_chunks(
    file: ArchiveFile, batches: Iterable[Iterable[Row]], *, header: bool = True, chunk_bytes: int = CHUNK_BYTES
) -> Iterator[bytes]:
    """The zip of ``file`` holding these rows (oldest first), streamed as chunks."""
    return zip_chunks(member_name(file), csv_blocks(batches, header=header), chunk_bytes=chunk_bytes)


def archive_bytes(file: ArchiveFile, batches: Iterable[Iterable[Row]], *, header: bool = True) -> bytes:
    """The whole zip at once (small files, tests)."""
    return b"".join(archive_chunks(file, batches, header=header))


def sha256_of(chunks: Iterable[bytes]) -> str:
    """The hex SHA-256 of the concatenated chunks, consumed one at a time."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def archive_checksum(file: ArchiveFile, batches: Iterable[Iterable[Row]], *, header: bool = True) -> str:
    """The ``.CHECKSUM`` body of ``file``'s zip (``<sha256>  <name>.zip\\n``), computed without holding the zip."""
    return checksum_text(sha256_of(archive_chunks(file, batches, header=header)), file.name)
