"""``GET /data/futures/um/{daily,monthly}/klines/SYMBOL/INTERVAL/SYMBOL-INTERVAL-DATE.zip`` (and ``.CHECKSUM``):
the record as Binance's public archive, so anything that reads that archive (another instance's
``backfill_klines`` with ``BINANCE_ARCHIVE_URL`` pointed here) can read this mirror.

Only past, complete days and months are served (:mod:`klines.api.archive_check`);
any other file is a 404 with a JSON reason. A zip is built while it is sent, by
the shared writer (:mod:`klines.export.archive_files`), from batches read on
threads of its own (a month of 1m takes seconds; page reads are not kept
waiting), so memory stays flat whatever the file. The bytes depend on the
stored klines alone, so the SHA-256 is the same on every build: it is computed
while a zip is sent (or built for a ``.CHECKSUM`` or ``HEAD``) and kept in a
small LRU keyed by the file and its stored count, which then also gives the
zip's ETag and Content-Length.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from django.db import connection
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from klines.api.archive_check import Refused, check_complete, check_request, gap_slots
from klines.api.page_cache import CLOSED_CACHE_CONTROL, etag_of, if_none_match
from klines.api.recorded import recorded, refresh_recorded
from klines.binance.archive import ArchiveFile, checksum_text, midnight, parse_path
from klines.export.archive_files import archive_chunks
from klines.store.exchange_gaps import exchange_gaps
from klines.store.reads import count_between, klines_in_batches

BUILD_THREADS = 2  # archive files built at once; more only queue behind SecantusDB's one thread and the GIL
BATCH = 1500  # klines per read: one indexed page
DIGESTS = 4096  # files whose SHA-256 and size are kept

_builds = ThreadPoolExecutor(max_workers=BUILD_THREADS, thread_name_prefix="klines-archive")
T = TypeVar("T")
FileKey = tuple[ArchiveFile, int]  # the file and how many of its klines are stored


class _Lru(OrderedDict):
    """A dict that forgets its least recently used entries past ``size``."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def remember(self, key: object, value: object) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


_digests = _Lru(DIGESTS)  # (file, stored count) -> (SHA-256, size) of its zip
_complete = _Lru(DIGESTS)  # file -> its stored count, once found complete


def _refusal(reason: str) -> HttpResponse:
    body = json.dumps({"code": 404, "msg": reason}, separators=(",", ":"))
    return HttpResponse(body, status=404, content_type="application/json")


def stored_count(file: ArchiveFile) -> int:
    """How many of ``file``'s klines are stored; :class:`Refused` unless the file is complete (a build thread)."""
    start, end = midnight(file.start), midnight(file.end)
    try:
        stored = count_between(file.symbol, file.interval, start, end)
        gaps = gap_slots(exchange_gaps(file.symbol, file.interval), file) if stored else 0
    except Exception:
        connection.close()  # this thread's connection: the next read starts afresh
        raise
    check_complete(file, stored=stored, exchange_gaps=gaps)
    return stored


def file_chunks(file: ArchiveFile) -> Iterator[bytes]:
    """The zip of ``file`` from the store, as chunks of ~64 KiB, one batch of klines read at a time."""
    last = midnight(file.end) - timedelta(milliseconds=1)
    batches = klines_in_batches(file.symbol, file.interval, midnight(file.start), last, BATCH)
    return archive_chunks(file, batches)


def digest_of(file: ArchiveFile) -> tuple[str, int]:
    """SHA-256 and size of ``file``'s zip, built and dropped chunk by chunk (a build thread)."""
    digest, size = hashlib.sha256(), 0
    for chunk in file_chunks(file):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


async def _build(function: Callable[..., T], *args: object) -> T:
    return await asyncio.get_running_loop().run_in_executor(_builds, function, *args)


async def _known_digest(key: FileKey) -> tuple[str, int]:
    known = _digests.get(key)
    if known is None:
        known = await _build(digest_of, key[0])
        _digests.remember(key, known)
    return known


async def _stream(key: FileKey) -> AsyncIterator[bytes]:
    """The zip's chunks, each built on a build thread; its digest kept once the last is sent."""
    chunks = file_chunks(key[0])
    digest, size = hashlib.sha256(), 0
    while (chunk := await _build(next, chunks, None)) is not None:
        digest.update(chunk)
        size += len(chunk)
        yield chunk
    _digests.remember(key, (digest.hexdigest(), size))


@csrf_exempt
async def archive_file(request: HttpRequest, path: str) -> HttpResponse | StreamingHttpResponse:
    """A zip of Binance's archive layout, or its ``.CHECKSUM``, built from the record."""
    if request.method not in ("GET", "HEAD"):
        return HttpResponse(status=405, headers={"Allow": "GET, HEAD"})
    parsed = parse_path(path)
    if parsed is None:
        return _refusal(f"{path}: not an archive file (data/futures/um/{{daily,monthly}}/klines/...)")
    file, wants_checksum = parsed
    await refresh_recorded()
    symbols, intervals = recorded()
    try:
        check_request(file, symbols=symbols, intervals=intervals, today=datetime.now(UTC).date())
        stored = _complete.get(file)
        if stored is None:
            stored = await _build(stored_count, file)
            _complete.remember(file, stored)
        key = (file, stored)
    except Refused as refused:
        return _refusal(refused.reason)
    if wants_checksum:
        digest, _ = await _known_digest(key)
        body = checksum_text(digest, file.name).encode()
        response = _cached(request, body, etag_of(body), "text/plain")
    elif request.method == "HEAD":
        digest, size = await _known_digest(key)
        response = _cached(request, b"", f'"{digest}"', "application/zip")
        response["Content-Length"] = str(size)
    else:
        known = _digests.get(key)
        if known is not None and if_none_match(request.headers.get("If-None-Match"), f'"{known[0]}"'):
            response = HttpResponse(status=304)
        else:
            response = StreamingHttpResponse(_stream(key), content_type="application/zip")
        if known is not None:
            response["ETag"] = f'"{known[0]}"'
            if response.status_code == 200:
                response["Content-Length"] = str(known[1])
    response["Cache-Control"] = CLOSED_CACHE_CONTROL
    return response


def _cached(request: HttpRequest, body: bytes, etag: str, content_type: str) -> HttpResponse:
    if if_none_match(request.headers.get("If-None-Match"), etag):
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(body, content_type=content_type)
    response["ETag"] = etag
    return response
