"""Binance's USD-M market-data endpoints, answered from the record: ``/fapi/v1/klines``, ``time``, ``ping``,
``exchangeInfo``; any other path under ``/fapi/`` gets Binance's JSON error.

The views are async and run their database reads off Django's one
thread-sensitive worker, so many history requests are served side by side;
kline pages are read and encoded on the mirror's own threads
(:mod:`klines.api.pages`), carry an ETag derived from their bytes and answer
``If-None-Match`` with a 304. A closed page (no kline can ever be added to
it) is kept encoded and may be cached by clients for good; any other page is
``no-cache``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable

from asgiref.sync import sync_to_async
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from pymongo.errors import PyMongoError

from klines.api.errors import NOT_YET_FETCHED, BinanceError, no_such_path
from klines.api.page_cache import if_none_match
from klines.api.pages import page
from klines.api.params import parse_kline_query
from klines.api.recorded import recorded, refresh_recorded
from klines.store.exchange import exchange_info as stored_exchange_info

logger = logging.getLogger(__name__)

UNAVAILABLE = BinanceError(-1001, "Internal error; unable to process your request. Please try again.", 503)
View = Callable[[HttpRequest], Awaitable[HttpResponse]]


def json_response(body: object, status: int = 200) -> HttpResponse:
    return HttpResponse(json.dumps(body, separators=(",", ":")), status=status, content_type="application/json")


def binance_endpoint(view: View) -> View:
    """GET only; a :class:`BinanceError` becomes Binance's JSON answer; a database outage a 503, never a 500."""

    async def endpoint(request: HttpRequest) -> HttpResponse:
        if request.method not in ("GET", "HEAD"):
            error = no_such_path(request.path, request.method or "")
            return json_response(error.body(), 405)
        try:
            return await view(request)
        except BinanceError as error:
            return json_response(error.body(), error.status)
        except (DatabaseError, PyMongoError) as exc:
            logger.warning("%s: database unavailable: %s", request.path, type(exc).__name__)
            return json_response(UNAVAILABLE.body(), UNAVAILABLE.status)

    endpoint.__name__ = view.__name__
    endpoint.__doc__ = view.__doc__
    # No cookies, no writes: the CSRF check would only answer a foreign POST with an HTML page.
    return csrf_exempt(endpoint)


@binance_endpoint
async def klines(request: HttpRequest) -> HttpResponse:
    """``GET /fapi/v1/klines``: closed klines from the record, as Binance answers them."""
    await refresh_recorded()
    symbols, intervals = recorded()
    query = parse_kline_query(request.GET, symbols=symbols, intervals=intervals)
    found = await page((query.symbol, query.interval, query.start_ms, query.end_ms, query.limit))
    if if_none_match(request.headers.get("If-None-Match"), found.etag):
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(found.body, content_type="application/json")
    response["ETag"] = found.etag
    response["Cache-Control"] = found.cache_control
    return response


@binance_endpoint
async def server_time(request: HttpRequest) -> HttpResponse:
    """``GET /fapi/v1/time``: this service's clock, in milliseconds."""
    return json_response({"serverTime": round(time.time() * 1000)})


@binance_endpoint
async def ping(request: HttpRequest) -> HttpResponse:
    """``GET /fapi/v1/ping``: ``{}``."""
    return json_response({})


@binance_endpoint
async def exchange_info(request: HttpRequest) -> HttpResponse:
    """``GET /fapi/v1/exchangeInfo``: the copy the ingest last fetched from the exchange."""
    body = await sync_to_async(stored_exchange_info, thread_sensitive=False)()
    if body is None:
        raise NOT_YET_FETCHED
    return HttpResponse(body, content_type="application/json")


@csrf_exempt
async def not_found(request: HttpRequest) -> HttpResponse:
    """Any other path under ``/fapi/``: Binance's answer for a path it does not serve."""
    error = no_such_path(request.path, request.method or "")
    return json_response(error.body(), error.status)
