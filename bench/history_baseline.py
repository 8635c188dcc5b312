"""The history benchmark's baseline: ``GET /fapi/v1/klines`` as the plain ORM would answer it.

Both the settings (the service's, with this module as the URLconf) and the URLconf of a daphne
with the service's command line and project. The view is a plain synchronous Django view, so
Django runs it on its one thread-sensitive worker, and its query is the ORM's own
``filter(...).order_by("open_time")[:limit]``. The rows are built and encoded by the service's
own code, so the bodies are byte for byte the service's.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path

from binancews.settings import *  # noqa: F403

ROOT_URLCONF = __name__


def klines(request: HttpRequest) -> HttpResponse:
    """``symbol``, ``interval``, ``startTime`` and ``limit`` only: the page the benchmark asks for."""
    from klines.api.rows import kline_row  # imported here: settings load before the apps
    from klines.api.views import json_response
    from klines.binance.parse import ms_to_datetime
    from klines.models import Kline

    start = ms_to_datetime(int(request.GET["startTime"]))
    page = Kline.objects.filter(
        symbol=request.GET["symbol"].upper(), interval=request.GET["interval"], open_time__gte=start
    ).order_by("open_time")[: int(request.GET.get("limit", 500))]
    return json_response([kline_row(k) for k in page])


urlpatterns = [path("fapi/v1/klines", klines)]
