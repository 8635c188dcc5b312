"""Store a history of closed klines through the ORM, from the simulated exchange's series.

Run in a subprocess with the service's environment (MONGO_URI, MONGO_DATABASE, ...):
``python -m bench.seed --symbols btcusdt,... --count 30``. The klines are the
ones the simulated exchange reports for the ``count`` intervals before now, so
later closes from it continue the same price walk.
"""

from __future__ import annotations

import argparse
import os
import time

import django


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.seed")
    parser.add_argument("--symbols", required=True)
    parser.add_argument("--count", type=int, default=30)
    parser.add_argument("--interval", default="1m")
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "binancews.settings")
    django.setup()
    from klines.binance.intervals import INTERVAL_SECONDS
    from klines.binance.parse import parse_rest_row
    from klines.models import Kline
    from klines.simexchange.series import KlineSeries

    series = KlineSeries(interval=args.interval, interval_ms=INTERVAL_SECONDS[args.interval] * 1000)
    current = series.index_at(int(time.time() * 1000))
    rows = []
    for symbol in (s.strip().upper() for s in args.symbols.split(",") if s.strip()):
        for index in range(current - args.count, current):
            kline = parse_rest_row(series.kline(symbol, index).rest_row(), symbol=symbol, interval=args.interval)
            rows.append(Kline(**kline.as_fields()))
    Kline.objects.bulk_create(rows)
    print(f"seeded {len(rows)} klines", flush=True)


if __name__ == "__main__":
    main()
