"""A simulated Binance USD-M futures exchange on one port: combined stream + REST.

* ``ws://host:port/market/stream?streams=btcusdt@kline_1m/...`` (any path ending
  in ``/stream``) pushes an unclosed kline event per stream every
  ``update_seconds`` and a closed one (``k.x == true``) at each interval boundary.
* ``<symbol>@markPrice@1s`` (or ``@markPrice``) streams on the same path push a mark-price update per
  stream every ``update_seconds``, and one at exactly each funding time (:mod:`klines.simexchange.derivatives`).
* ``GET /fapi/v1/exchangeInfo`` lists the symbols as Binance's perpetual contracts.
* ``GET /fapi/v1/klines?symbol=..&interval=..&startTime=..&endTime=..&limit=..``
  answers with Binance's 12-value rows, the still-open kline included (with
  its values so far), as Binance does.
* ``GET /fapi/v1/markPriceKlines`` and ``/fapi/v1/fundingRate``: :mod:`klines.simexchange.derivatives`.
* ``GET /data/futures/um/{monthly,daily}/klines/SYMBOL/INTERVAL/SYMBOL-INTERVAL-DATE.zip``
  (and ``.zip.CHECKSUM``): the public archive's files, as data.binance.vision
  serves them (:mod:`klines.simexchange.archive`).
* With ``weight_limit``, REST counts request weight per rolling minute as Binance does
  (``X-MBX-USED-WEIGHT-1M``; 429 with ``Retry-After`` over it): :mod:`klines.simexchange.weight`.

Time runs ``speed`` times faster than the wall clock, so a test sees a minute
close every second at ``speed=60``. Tests subclass or configure it to inject
faults; the development command ``simulate_exchange`` runs it as is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import SplitResult, parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from klines.binance.archive import ArchiveFile, parse_path
from klines.binance.intervals import INTERVAL_SECONDS
from klines.binance.parse import ms_to_datetime
from klines.simexchange import archive
from klines.simexchange.derivatives import FUNDING_MS, mark_price_event, rest_funding, rest_mark_klines
from klines.simexchange.exchange_info import ONBOARD_MS, exchange_info
from klines.simexchange.series import KlineSeries, SimKline
from klines.simexchange.weight import WeightCounter, request_weight

logger = logging.getLogger(__name__)

REST_MAX_LIMIT = 1500
REST_DEFAULT_LIMIT = 500
ARCHIVE_CACHE = 16  # zips kept, a year of monthly files (a .CHECKSUM, then its zip: generated once)
DERIVATIVES = {"/fapi/v1/markPriceKlines": rest_mark_klines, "/fapi/v1/fundingRate": rest_funding}
MARK_STREAMS = ("markPrice@1s", "markPrice")
FIRST_CLOSE_SECONDS = 5.0  # simulate_exchange: the first close comes this soon after start


def clock_closing_soon(
    now_ms: int, interval_ms: int, *, speed: float, lead_seconds: float = FIRST_CLOSE_SECONDS
) -> int:
    """A start clock, never behind ``now_ms``, at which the current interval closes ``lead_seconds`` (wall) later.

    Starting at the wall clock, a developer waits up to a whole interval (a minute)
    for the first live close; this puts the simulated clock less than an interval ahead.
    """
    lead_ms = int(lead_seconds * 1000 * speed)
    start = now_ms - now_ms % interval_ms + interval_ms - lead_ms
    return start if start >= now_ms else now_ms  # already closing within the lead (or speed makes it moot)


def start_clock(now_ms: int, interval_ms: int, *, speed: float, epoch: int | None = None) -> int:
    """The simulated clock at wall time ``now_ms``.

    At speed 1, the wall clock's own timeline (:func:`clock_closing_soon`). Sped up, the clock has run
    ``speed`` times the wall clock since ``epoch`` (wall ms): a restart with the same epoch continues the
    same timeline, so what the record holds is never ahead of the exchange's clock.
    """
    if speed == 1 or epoch is None:
        return clock_closing_soon(now_ms, interval_ms, speed=speed)
    return epoch + int((now_ms - epoch) * speed)


class SimulatedExchange:
    def __init__(
        self,
        *,
        symbols: Sequence[str],
        interval: str = "1m",
        intervals: Sequence[str] = (),
        speed: float = 1.0,
        update_seconds: float = 0.25,
        start_ms: int | None = None,
        seed: int = 1,
        duplicate_closes: bool = False,
        max_close_rounds: int | None = None,
        weight_limit: int | None = None,
    ) -> None:
        """``weight_limit``: REST weight a minute, as Binance's per-IP limit (reported in ``X-MBX-USED-WEIGHT-1M``,
        429 over it); ``None``: neither reported nor limited."""
        self.symbols = [s.upper() for s in symbols]
        self.delisted: set[str] = set()  # listed as SETTLING in exchangeInfo, as Binance lists a closing contract
        self.intervals = tuple(intervals) or (interval,)
        self.interval = self.intervals[0]  # the first: what the single-interval helpers below mean
        self.series_of = {
            i: KlineSeries(interval=i, interval_ms=INTERVAL_SECONDS[i] * 1000, seed=seed) for i in self.intervals
        }
        self.series = self.series_of[self.interval]
        self.speed = speed
        self.update_seconds = update_seconds
        self.duplicate_closes = duplicate_closes
        self.max_close_rounds = max_close_rounds
        self._start_ms = start_ms if start_ms is not None else int(time.time() * 1000)
        self._started = time.monotonic()
        self.closed_sent: list[SimKline] = []  # every close event sent, repeats included
        self.close_rounds = 0
        self.archive_requests: list[str] = []  # paths asked for under /data/
        self.stream_requests: list[str] = []  # the path (with the streams) of each stream connection
        self.weight = WeightCounter(weight_limit)
        self._zips: dict[ArchiveFile, bytes] = {}
        self._unstreamed: dict[str, KlineSeries] = {}  # intervals REST and the archive answer, not streamed
        self._server: Server | None = None

    # -- clock -------------------------------------------------------------
    def now_ms(self) -> int:
        return self._start_ms + int((time.monotonic() - self._started) * 1000 * self.speed)

    def current_index(self, interval: str | None = None) -> int:
        return self.series_of[interval or self.interval].index_at(self.now_ms())

    def closed_klines(self, symbol: str, first_index: int, last_index: int) -> list[SimKline]:
        """Ground truth: the klines of ``symbol`` from ``first_index`` to ``last_index``."""
        return [self.series.kline(symbol, i) for i in range(first_index, last_index + 1)]

    # -- server --------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Start listening; return the port."""
        self._server = await serve(
            self._handle_stream, host, port, process_request=self._process_request, compression=None
        )
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # -- websocket -----------------------------------------------------------
    async def _handle_stream(self, connection: ServerConnection) -> None:
        self.stream_requests.append(connection.request.path)
        wanted = self._requested_streams(connection.request.path)
        marks = self._requested_marks(connection.request.path)
        logger.info("stream client connected for %d streams", sum(len(s) for s in wanted.values()) + len(marks))
        index = {interval: self.current_index(interval) for interval in wanted}
        settled = self.now_ms() // FUNDING_MS
        try:
            while True:
                if marks:
                    settled = await self._send_marks(connection, marks, settled)
                for interval, symbols in wanted.items():
                    series = self.series_of[interval]
                    now = self.current_index(interval)
                    if now > index[interval] and self._may_close():
                        await self._send_closes(connection, symbols, range(index[interval], now), interval=interval)
                        index[interval] = now
                    fraction = (self.now_ms() % series.interval_ms) / series.interval_ms
                    for symbol in symbols:
                        partial = series.partial(symbol, index[interval], fraction)
                        await self.send(connection, partial.stream_event(closed=False, event_ms=self.now_ms()))
                await asyncio.sleep(self.update_seconds)
        except ConnectionClosed:
            logger.info("stream client left")

    async def _send_marks(self, connection: ServerConnection, marks: list[tuple[str, str]], settled: int) -> int:
        """A mark-price update per stream; first, if a funding time passed since the last, one at exactly it.
        Returns the funding periods settled by now."""
        now = self.now_ms()
        series = self.history_series("1m")
        assert series is not None
        moments = ([now // FUNDING_MS * FUNDING_MS] if now // FUNDING_MS > settled else []) + [now]
        for at in moments:
            for symbol, stream in marks:
                await self.send(connection, mark_price_event(series, symbol, at, stream=stream))
        return now // FUNDING_MS

    def _may_close(self) -> bool:
        return self.max_close_rounds is None or self.close_rounds < self.max_close_rounds

    async def _send_closes(
        self, connection: ServerConnection, symbols: list[str], indexes: range, *, interval: str | None = None
    ) -> None:
        series = self.series_of[interval or self.interval]
        for index in indexes:
            self.close_rounds += 1
            for symbol in symbols:
                kline = series.kline(symbol, index)
                repeats = 2 if self.duplicate_closes else 1
                for _ in range(repeats):
                    await self.send(connection, kline.stream_event(closed=True, event_ms=self.now_ms()))
                    self.closed_sent.append(kline)

    async def send(self, connection: ServerConnection, message: dict[str, Any] | str) -> None:
        """Send one frame; the hook tests override to drop, mangle or delay frames."""
        await connection.send(message if isinstance(message, str) else json.dumps(message))

    def _requested_streams(self, path: str) -> dict[str, list[str]]:
        """Interval -> symbols (upper case) of the ``<symbol>@kline_<interval>`` streams this exchange serves."""
        query = parse_qs(urlsplit(path).query)
        wanted: dict[str, list[str]] = {}
        for stream in query.get("streams", [""])[0].split("/"):
            name, _, kind = stream.partition("@")
            interval = kind.removeprefix("kline_")
            if name and kind.startswith("kline_") and interval in self.series_of:
                wanted.setdefault(interval, []).append(name.upper())
        return wanted

    def _requested_marks(self, path: str) -> list[tuple[str, str]]:
        """(SYMBOL, stream) of the ``<symbol>@markPrice[@1s]`` streams of listed symbols."""
        names = parse_qs(urlsplit(path).query).get("streams", [""])[0].split("/")
        found = [(name.upper(), kind) for name, _, kind in (n.partition("@") for n in names)]
        return [(symbol, kind) for symbol, kind in found if kind in MARK_STREAMS and symbol in self.symbols]

    # -- REST ----------------------------------------------------------------
    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        if request.headers.get("Upgrade", "").lower() == "websocket":
            if parts.path.endswith("/stream"):
                return None
            return connection.respond(HTTPStatus.NOT_FOUND, "unknown stream path\n")
        if parts.path.startswith("/data/"):
            self.archive_requests.append(parts.path)
            body = self.archive_body(parts.path)
            if body is None:
                return connection.respond(HTTPStatus.NOT_FOUND, "<Error><Code>NoSuchKey</Code></Error>\n")
            return bytes_response(connection, body)
        if self.weight.limit is not None:
            used, retry_after = self.weight.spend(request_weight(parts.path, parse_qs(parts.query)))
            if retry_after is not None:
                body = {"code": -1003, "msg": f"Too many requests; the limit is {self.weight.limit} weight a minute."}
                response = json_response(connection, HTTPStatus.TOO_MANY_REQUESTS, body)
                response.headers["Retry-After"] = str(round(retry_after))
                response.headers["X-MBX-USED-WEIGHT-1M"] = str(used)
                return response
            response = self._rest(connection, parts)
            response.headers["X-MBX-USED-WEIGHT-1M"] = str(used)
            return response
        return self._rest(connection, parts)

    def _rest(self, connection: ServerConnection, parts: SplitResult) -> Response:
        if parts.path == "/fapi/v1/klines":
            status, body = self.rest_klines(parse_qs(parts.query))
        elif parts.path in DERIVATIVES:
            status, body = DERIVATIVES[parts.path](self, parse_qs(parts.query))
        elif parts.path == "/fapi/v1/time":
            status, body = HTTPStatus.OK, {"serverTime": self.now_ms()}
        elif parts.path == "/fapi/v1/ping":
            status, body = HTTPStatus.OK, {}
        elif parts.path == "/fapi/v1/exchangeInfo":
            ticks = [(symbol, self.series.tick(symbol)) for symbol in self.symbols]
            status, body = HTTPStatus.OK, exchange_info(ticks, server_ms=self.now_ms(), delisted=self.delisted)
        else:
            status, body = HTTPStatus.NOT_FOUND, {"code": -1000, "msg": "not found"}
        return json_response(connection, status, body)

    def rest_klines(self, query: dict[str, list[str]]) -> tuple[HTTPStatus, Any]:
        """Answer ``/fapi/v1/klines`` like Binance: rows from startTime, at most limit."""

        def param(name: str) -> str | None:
            return query.get(name, [None])[0]

        symbol = (param("symbol") or "").upper()
        if symbol not in self.symbols:
            return HTTPStatus.BAD_REQUEST, {"code": -1121, "msg": "Invalid symbol."}
        series = self.history_series(param("interval") or "")
        if series is None:
            return HTTPStatus.BAD_REQUEST, {"code": -1120, "msg": "Invalid interval."}
        try:
            limit = min(int(param("limit") or REST_DEFAULT_LIMIT), REST_MAX_LIMIT)
            start = int(param("startTime")) if param("startTime") else None
            end = int(param("endTime")) if param("endTime") else self.now_ms()
        except ValueError:
            return HTTPStatus.BAD_REQUEST, {"code": -1100, "msg": "Illegal characters found in a parameter."}
        current = series.index_at(self.now_ms())
        last = min(series.index_at(end), current)
        first = last - limit + 1 if start is None else -(-start // series.interval_ms)
        last = min(last, first + limit - 1)
        rows = [self._rest_kline(series, symbol, i, current).rest_row() for i in range(first, last + 1)]
        return HTTPStatus.OK, rows

    def history_series(self, interval: str) -> KlineSeries | None:
        """The series of any fixed interval: REST and the archive answer them all, as Binance does (not only the
        streamed ones), so ``backfill_klines --intervals 1m,1h`` works against ``make simulate``."""
        if interval in self.series_of:
            return self.series_of[interval]
        if interval not in self._unstreamed and interval in INTERVAL_SECONDS:
            self._unstreamed[interval] = KlineSeries(
                interval=interval, interval_ms=INTERVAL_SECONDS[interval] * 1000, seed=self.series.seed
            )
        return self._unstreamed.get(interval)

    def archive_body(self, path: str) -> bytes | None:
        """The archive file at ``path`` (a zip or its ``.CHECKSUM``), ``None`` if not published; tests override it."""
        named = parse_path(path)
        if named is None:
            return None
        file, checksum = named
        series = self.history_series(file.interval)
        today = ms_to_datetime(self.now_ms()).date()
        listed = ms_to_datetime(ONBOARD_MS).date()
        if series is None or file.symbol not in self.symbols or not archive.published(file, today=today, listed=listed):
            return None
        data = self.archive_zip(file)
        return archive.checksum_of(file, data).encode() if checksum else data

    def archive_zip(self, file: ArchiveFile) -> bytes:
        """The zip of ``file`` (published or not), from the series; the last few are kept."""
        if file not in self._zips:
            text = archive.csv_text(self.history_series(file.interval), file, first_ms=ONBOARD_MS)
            while len(self._zips) >= ARCHIVE_CACHE:
                del self._zips[next(iter(self._zips))]
            self._zips[file] = archive.zip_bytes(file, text)
        return self._zips[file]

    def _rest_kline(self, series: KlineSeries, symbol: str, index: int, current: int) -> SimKline:
        """The kline as REST shows it now: the current one still open (partial), like Binance."""
        if index < current:
            return series.kline(symbol, index)
        fraction = (self.now_ms() % series.interval_ms) / series.interval_ms
        return series.partial(symbol, index, fraction)


def bytes_response(connection: ServerConnection, body: bytes) -> Response:
    response = connection.respond(HTTPStatus.OK, "")
    response.body = body
    for name, value in (("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))):
        del response.headers[name]
        response.headers[name] = value
    return response


def json_response(connection: ServerConnection, status: HTTPStatus, body: Any) -> Response:
    response = connection.respond(status, json.dumps(body))
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = "application/json"
    return response
