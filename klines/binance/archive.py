"""Pure: Binance's public kline archive (data.binance.vision) — its file layout and which files cover a range.

USD-M futures klines are published as one zip per (symbol, interval) and month
or day, each with a ``.CHECKSUM`` beside it::

    data/futures/um/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01.zip
    data/futures/um/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-02-01.zip
    data/futures/um/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-02-01.zip.CHECKSUM

A monthly file appears once its month is over, a daily file once its day is
over (usually within hours). :func:`archive_files` covers a range with monthly
files for whole past months, daily files for the past days after them, and
leaves the rest (today, a partial first month's days are daily) to REST.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

PREFIX = "data/futures/um"
MONTHLY = "monthly"
DAILY = "daily"
CHECKSUM_SUFFIX = ".CHECKSUM"
# "<64 hex>  <file name>" (sha256sum's format), one line.
_CHECKSUM_LINE = re.compile(r"\s*([0-9a-fA-F]{64})\s+\*?(\S+)\s*")
_PATH = re.compile(
    r"/?data/futures/um/(monthly|daily)/klines/([A-Z0-9]+)/([0-9]+[mhdw])/\2-\3-"
    r"([0-9]{4}-[0-9]{2}(?:-[0-9]{2})?)\.zip(\.CHECKSUM)?"
)


class ChecksumError(ValueError):
    """A ``.CHECKSUM`` that cannot be read, or a file whose SHA-256 is not the published one."""


@dataclass(frozen=True, kw_only=True)
class ArchiveFile:
    """One published zip: ``period`` is ``monthly`` or ``daily``; it holds klines opened in ``[start, end)``."""

    symbol: str
    interval: str
    period: str
    start: date

    @property
    def label(self) -> str:
        """The file's date as Binance writes it: ``2024-01`` or ``2024-02-01``."""
        return f"{self.start:%Y-%m}" if self.period == MONTHLY else f"{self.start:%Y-%m-%d}"

    @property
    def name(self) -> str:
        return f"{self.symbol}-{self.interval}-{self.label}.zip"

    @property
    def path(self) -> str:
        return f"{PREFIX}/{self.period}/klines/{self.symbol}/{self.interval}/{self.name}"

    @property
    def end(self) -> date:
        return next_month(self.start) if self.period == MONTHLY else self.start + timedelta(days=1)

    def url(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/{self.path}"

    def checksum_url(self, base_url: str) -> str:
        return self.url(base_url) + CHECKSUM_SUFFIX

    def days(self) -> list[ArchiveFile]:
        """The daily files of a monthly file's month (what to try when the monthly file is missing)."""
        if self.period == DAILY:
            return [self]
        count = (self.end - self.start).days
        return [
            ArchiveFile(symbol=self.symbol, interval=self.interval, period=DAILY, start=self.start + timedelta(days=d))
            for d in range(count)
        ]


def next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def archive_files(symbol: str, interval: str, *, since: datetime, until: datetime, today: date) -> list[ArchiveFile]:
    """The files that cover klines opened in ``[since, until)``, oldest first, published before ``today``.

    Whole months before ``today``'s month inside the range: one monthly file each;
    every other day before ``today`` that the range touches: a daily file. What is
    left (``today`` and later) is REST's.
    """
    files: list[ArchiveFile] = []
    day = since.astimezone(UTC).date()
    last = min(today, (until - timedelta(microseconds=1)).astimezone(UTC).date() + timedelta(days=1))
    this_month = today.replace(day=1)
    while day < last:
        month_end = next_month(day.replace(day=1))
        whole = day.day == 1 and midnight(day) >= since and midnight(month_end) <= until
        if whole and month_end <= this_month:
            files.append(ArchiveFile(symbol=symbol, interval=interval, period=MONTHLY, start=day))
            day = month_end
        else:
            files.append(ArchiveFile(symbol=symbol, interval=interval, period=DAILY, start=day))
            day += timedelta(days=1)
    return files


def parse_checksum(text: str, *, name: str) -> str:
    """The lower-case SHA-256 from a ``.CHECKSUM`` body for the file ``name``; :class:`ChecksumError` if unusable."""
    match = _CHECKSUM_LINE.fullmatch(text)
    if match is None:
        raise ChecksumError(f"{name}.CHECKSUM is not '<sha256>  <file name>': {text[:100]!r}")
    if match.group(2) != name:
        raise ChecksumError(f"{name}.CHECKSUM names another file: {match.group(2)!r}")
    return match.group(1).lower()


def checksum_text(digest: str, name: str) -> str:
    """A ``.CHECKSUM`` body as Binance publishes it (sha256sum's output)."""
    return f"{digest}  {name}\n"


def parse_path(path: str) -> tuple[ArchiveFile, bool] | None:
    """The file a request path names, and whether it asks for its ``.CHECKSUM``; ``None`` if not a kline file."""
    match = _PATH.fullmatch(path)
    if match is None:
        return None
    period, symbol, interval, label, checksum = match.groups()
    if (period == MONTHLY) != (len(label) == 7):
        return None
    try:
        start = date.fromisoformat(label + "-01" if period == MONTHLY else label)
    except ValueError:
        return None
    return ArchiveFile(symbol=symbol, interval=interval, period=period, start=start), checksum is not None
