"""Time the admin's kline list pages with Django's test client, logged in, over the service's real database.

Run in a subprocess with the service's environment (MONGO_URI, MONGO_DATABASE, ...):
``python -m bench.admin_pages --symbols BTCUSDT,... --first-open-ms ... --minutes ... --pages 40``
prints one JSON object: seconds per page for each kind of page. ``--stock`` times
one page of Django's own change list instead (a plain ``ModelAdmin``, the baseline).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from datetime import UTC, datetime


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.admin_pages")
    parser.add_argument("--symbols", required=True)
    parser.add_argument("--interval", default="1m")
    parser.add_argument("--first-open-ms", type=int, required=True)
    parser.add_argument("--minutes", type=int, required=True)
    parser.add_argument("--pages", type=int, default=40)
    parser.add_argument("--stock", action="store_true", help="one page of Django's stock change list")
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "binancews.settings")
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.test import Client
    from django.test.utils import setup_test_environment

    setup_test_environment()  # responses carry their template context (the page's rows and links)

    user = User.objects.filter(username="bench").first() or User.objects.create_superuser("bench", "", "bench")
    symbols = args.symbols.split(",")
    rng = random.Random(7)
    if args.stock:
        print(json.dumps({"stock": _stock_page(user, rng.choice(symbols), args.interval)}), flush=True)
        return
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)

    times: dict[str, list[float]] = {"first": [], "next": [], "day": [], "unfiltered": [], "detail": []}

    def get(kind: str, params: dict | str):
        """One admin page, timed into ``times[kind]`` (not timed for ``warm-up``)."""
        began = time.monotonic()
        path = "/admin/klines/kline/" + (params if isinstance(params, str) else "")
        response = client.get(path, {} if isinstance(params, str) else params, secure=True)
        times.get(kind, []).append(time.monotonic() - began)
        if response.status_code != 200:
            raise RuntimeError(f"{path} {params}: HTTP {response.status_code}")
        return response

    get("warm-up", {"symbol": symbols[0], "interval": args.interval})  # templates, the first connection
    rows = 0
    for _ in range(args.pages):
        symbol = rng.choice(symbols)
        cl = get("first", {"symbol": symbol, "interval": args.interval}).context["cl"]
        rows = max(rows, len(cl.result_list))
        get("next", cl.older_link)
        # a day of the record, through the date drill-down
        day = datetime.fromtimestamp((args.first_open_ms + rng.randrange(args.minutes) * 60_000) / 1000, UTC)
        params = {"symbol": symbol, "interval": args.interval, "open_time__year": day.year}
        get("day", params | {"open_time__month": day.month, "open_time__day": day.day})
    for _ in range(max(3, args.pages // 10)):
        kline = get("unfiltered", {}).context["cl"].result_list[0]
        get("detail", f"{kline.pk}/change/")
    print(json.dumps({"times": times, "rows_per_page": rows}), flush=True)


def _stock_page(user, symbol: str, interval: str) -> float:
    """Seconds for Django's own change list of the klines (plain ModelAdmin), filtered as above."""
    from django.contrib import admin
    from django.test import RequestFactory

    from klines.models import Kline

    class Stock(admin.ModelAdmin):
        list_display = ["symbol", "interval", "open_time", "close"]
        list_filter = ["symbol", "interval"]
        date_hierarchy = "open_time"
        ordering = ["-open_time"]
        list_per_page = 100

    request = RequestFactory().get("/admin/klines/kline/", {"symbol": symbol, "interval": interval}, secure=True)
    request.user = user
    began = time.monotonic()
    Stock(Kline, admin.site).changelist_view(request).render()
    return time.monotonic() - began


if __name__ == "__main__":
    main()
