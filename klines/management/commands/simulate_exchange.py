"""``manage.py simulate_exchange``: a local stand-in for Binance, for offline development."""

from __future__ import annotations

import asyncio
import time
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from klines.binance.intervals import INTERVAL_SECONDS
from klines.binance.source import simulated_source
from klines.management.stream_options import add_stream_options, stream_options
from klines.simexchange.exchange_info import made_up_symbols
from klines.simexchange.server import FIRST_CLOSE_SECONDS, SimulatedExchange, start_clock

DEFAULT_SYMBOLS = ("btcusdt", "bnbusdt", "ethusdt", "solusdt", "xrpusdt")  # listed first, as on Binance
ALL_LISTED = 500


class Command(BaseCommand):
    help = (
        "Serve a simulated Binance combined kline stream and /fapi/v1/klines on 127.0.0.1. "
        "Point BINANCE_WS_URL at ws://127.0.0.1:PORT/market and BINANCE_REST_URL at http://127.0.0.1:PORT. "
        f"Its clock starts {FIRST_CLOSE_SECONDS:g} s before an interval closes, so the first close comes at once."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--port", type=int, default=9900, help="port to listen on (default 9900)")
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
        add_stream_options(parser)
        parser.add_argument(
            "--speed", type=float, default=1.0, help="clock speed-up, e.g. 60 closes a 1m kline every second"
        )
        parser.add_argument("--seed", type=int, default=1, help="the price series' seed (default 1)")
        parser.add_argument(
            "--epoch",
            type=int,
            help="with --speed other than 1: the wall-clock ms from which the clock runs fast (default: now); "
            "the same epoch continues the same timeline after a restart",
        )
        parser.add_argument("--update-seconds", type=float, default=0.3, help="seconds between unclosed updates")
        parser.add_argument(
            "--listed",
            type=int,
            default=ALL_LISTED,
            help=f"with KLINE_SYMBOLS=all and no --symbols: how many perpetuals to list (default {ALL_LISTED})",
        )

    def handle(
        self,
        *,
        port: int,
        host: str,
        symbols: str | None,
        interval: str | None,
        speed: float,
        seed: int,
        epoch: int | None,
        update_seconds: float,
        listed: int,
        **options: Any,
    ) -> None:
        if symbols is None and settings.BINANCEWS.all_symbols:
            # KLINE_SYMBOLS=all offline: the seed's five and made-up contracts, all streamed.
            symbols = ",".join([*DEFAULT_SYMBOLS, *made_up_symbols(max(0, listed - len(DEFAULT_SYMBOLS)))])
        symbol_list, intervals = stream_options(symbols, interval)
        if speed <= 0 or update_seconds <= 0:
            raise CommandError("--speed and --update-seconds must be positive")
        now_ms = int(time.time() * 1000)
        if speed == 1:
            epoch = None  # the wall clock's own timeline
        elif epoch is None:
            epoch = now_ms
        start_ms = start_clock(now_ms, INTERVAL_SECONDS[intervals[0]] * 1000, speed=speed, epoch=epoch)
        exchange = SimulatedExchange(
            symbols=symbol_list,
            intervals=intervals,
            speed=speed,
            update_seconds=update_seconds,
            start_ms=start_ms,
            seed=seed,
        )
        self.source = simulated_source(seed=seed, speed=speed, epoch=epoch)
        try:
            asyncio.run(self._serve(exchange, host, port))
        except KeyboardInterrupt:
            self.stdout.write("simulated exchange stopped")

    async def _serve(self, exchange: SimulatedExchange, host: str, port: int) -> None:
        try:
            bound = await exchange.start(host, port)
        except OSError as exc:
            raise CommandError(f"cannot listen on {host}:{port}: {exc}") from None
        self.stdout.write(
            f"simulated exchange on {host}:{bound}\n"
            f"  BINANCE_WS_URL=ws://{host}:{bound}/market\n  BINANCE_REST_URL=http://{host}:{bound}\n"
            f"  KLINE_SOURCE={self.source}"
        )
        await asyncio.Future()
