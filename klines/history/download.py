"""Download one archive zip to a temporary file, checked against its published SHA-256 before anyone reads it."""

from __future__ import annotations

import hashlib
import tempfile
import time
from pathlib import Path

import httpx

from klines.backoff import Backoff
from klines.binance.archive import ArchiveFile, ChecksumError, parse_checksum

ATTEMPTS = 3
RETRY = Backoff(initial=0.5, maximum=5.0)
CHUNK = 1 << 20


class Missing(Exception):
    """The archive has no such file (404), or it could not be fetched; the text says which."""


def download(client: httpx.Client, base_url: str, file: ArchiveFile, directory: Path) -> Path:
    """The zip of ``file`` in ``directory``, its SHA-256 verified.

    :class:`Missing` when it is not published or cannot be fetched after a few
    tries, :class:`ChecksumError` when its bytes are not the published ones.
    """
    checksum = parse_checksum(_get_text(client, file.checksum_url(base_url), file), name=file.name)
    target = directory / file.name
    digest = hashlib.sha256()
    for attempt in range(ATTEMPTS):
        try:
            with client.stream("GET", file.url(base_url)) as response, open(target, "wb") as out:
                _check_status(response, file)
                for chunk in response.iter_bytes(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            break
        except httpx.HTTPError as exc:
            digest = hashlib.sha256()
            if attempt + 1 == ATTEMPTS:
                raise Missing(f"{file.name}: {type(exc).__name__}: {exc}") from None
            time.sleep(RETRY.delay(attempt))
    if digest.hexdigest() != checksum:
        raise ChecksumError(
            f"{file.name}: SHA-256 {digest.hexdigest()[:16]}... is not the published {checksum[:16]}..."
        )
    return target


def _get_text(client: httpx.Client, url: str, file: ArchiveFile) -> str:
    for attempt in range(ATTEMPTS):
        try:
            response = client.get(url)
            _check_status(response, file)
            return response.text
        except httpx.HTTPError as exc:
            if attempt + 1 == ATTEMPTS:
                raise Missing(f"{file.name}.CHECKSUM: {type(exc).__name__}: {exc}") from None
            time.sleep(RETRY.delay(attempt))
    raise AssertionError("unreachable")


def _check_status(response: httpx.Response, file: ArchiveFile) -> None:
    if response.status_code == 404:
        raise Missing(f"{file.name}: not published")
    response.raise_for_status()


def scratch() -> tempfile.TemporaryDirectory:
    """A directory for downloads, removed when the run ends."""
    return tempfile.TemporaryDirectory(prefix="binancews-archive-")
