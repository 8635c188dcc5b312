"""The chart page, ``GET /chart/<SYMBOL>?interval=1m``: a page shell; its script draws the chart.

History comes from the service's own ``/fapi/v1/klines`` and the live candle
from the Binance-protocol stream ``/market/ws/<symbol>@kline_<interval>``, so
the view itself reads no kline. Any recorded symbol and interval
(:func:`klines.api.recorded.recorded`) has a page; anything else is a 404.
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_safe

from klines.api.params import MAX_LIMIT
from klines.api.recorded import recorded
from klines.binance.intervals import INTERVAL_SECONDS, interval_ms
from klines.serving.settings import serving_settings
from klines.serving.views import CONTENT_SECURITY_POLICY

# lightweight-charts inserts one constant <style> element for its attribution
# logo; the policy allows exactly that text by its hash (tests/test_chart.py
# recomputes it from the vendored file, so an update cannot break it silently).
LIBRARY_STYLE_HASH = "sha256-3pRED1tOXas1FXFoPb9TGCjmYe9XQsmO9OV23khV2nY="
CHART_CONTENT_SECURITY_POLICY = f"{CONTENT_SECURITY_POLICY}; style-src 'self' '{LIBRARY_STYLE_HASH}'"

# Bars per history request: Binance's maximum, so 1,500 bars take one request.
PAGE_SIZE = MAX_LIMIT
# Whitespace slots drawn for one hole at most: a longer hole is shown as this wide a break.
MAX_HOLE_SLOTS = 120


def chart_url(symbol: str, interval: str) -> str:
    return f"{reverse('chart', args=[symbol.upper()])}?interval={interval}"


def ordered_intervals(intervals: frozenset[str]) -> list[str]:
    """Shortest first (``1m``, ``5m``, ``1h``, ...)."""
    return sorted(intervals, key=lambda name: INTERVAL_SECONDS.get(name, 0))


@require_safe
def chart(request: HttpRequest, symbol: str) -> HttpResponse:
    """A candlestick and volume chart of one recorded symbol and interval."""
    symbols, intervals = recorded()
    ordered = ordered_intervals(intervals)
    interval = request.GET.get("interval") or ordered[0]
    if symbol.upper() not in symbols:
        raise Http404(f"{symbol} is not recorded")
    if interval not in intervals:
        raise Http404(f"the {interval} interval is not recorded")
    if symbol != symbol.upper() or "interval" not in request.GET:
        return HttpResponseRedirect(chart_url(symbol, interval))  # one shareable address per chart
    serving = serving_settings()
    context = {
        "symbol": symbol,
        "interval": interval,
        "interval_ms": interval_ms(interval),
        "timezone": serving.timezone,
        "symbols": sorted(symbols),
        "intervals": [{"name": name, "url": chart_url(symbol, name)} for name in ordered],
        "page_size": PAGE_SIZE,
        "max_hole_slots": MAX_HOLE_SLOTS,
    }
    response = render(request, "klines/chart.html", context)
    response["Content-Security-Policy"] = CHART_CONTENT_SECURITY_POLICY
    return response
