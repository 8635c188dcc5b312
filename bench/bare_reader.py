"""The ingest's CPU baseline: read a combined stream with websocket-client and ``json.loads`` each frame, nothing else.

Connected with the options the ingest uses (``skip_utf8_validation``: the
ingest decodes frames with ``bytes.decode()``), so the ratio measures what the
ingest adds to the bare cost of receiving and decoding the same frames.

Usage: ``python -m bench.bare_reader --url ws://127.0.0.1:P/market/stream?streams=...``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys

import websocket


def read(url: str) -> int:
    """Read until the connection ends or SIGTERM; return the frames decoded."""
    ws = websocket.create_connection(url, skip_utf8_validation=True)
    frames = 0
    with contextlib.suppress(websocket.WebSocketException, OSError, KeyboardInterrupt):
        while True:
            json.loads(ws.recv())
            frames += 1
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_reader")
    parser.add_argument("--url", required=True)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    print(f"bare reader: {read(args.url)} frames", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
