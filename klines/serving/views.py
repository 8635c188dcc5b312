"""The live dashboard on ``GET /``: a page shell that the websocket on ``/`` fills in.

The page needs no database query: its script connects to the websocket on the
same origin and draws the five payloads the feed already keeps in memory.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from klines.serving.settings import serving_settings
from klines.window import WINDOW

# The page loads nothing but its own static files and talks only to its own
# origin ('self' covers ws:// and wss:// on the same host in CSP Level 3).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "connect-src 'self'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)


@require_safe
def dashboard(request: HttpRequest) -> HttpResponse:
    """One empty panel per configured coin, in payload order."""
    serving = serving_settings()
    context = {
        "coins": [symbol.upper() for symbol in serving.symbols],
        "interval": serving.interval,
        "timezone": serving.timezone,
        "window": WINDOW,
    }
    response = render(request, "klines/dashboard.html", context)
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response
