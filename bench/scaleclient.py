"""One load-client process of the 10,000-client fan-out (``bench/scenarios/scale.py``).

``python -m bench.scaleclient --ports P1,P2 --count N`` opens N idle clients on
``/`` spread over the ports (:func:`bench.load.open_idle`), prints one JSON line
``{"opened", "refused", "first_error", "open_files_limit"}``, then answers one
JSON line per command read from stdin:

* ``arm``: forget the frames received so far; ``{"armed": n}``.
* ``wait <close> <seconds>``: wait until every client has a frame whose newest
  value is ``<close>`` (or the time is up); ``{"arrivals": [[port, wall time]],
  "missing": n, "dropped": n, "extra_frames": n}``, ``dropped`` counting clients
  the server closed, ``extra_frames`` frames beyond one per client.
* ``quit``: close every client (close handshake) and exit.

The scenario runs two of these, so no one event loop handles all 10,000
sockets and its own share of a close stays small (its CPU is reported).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys

from bench import load
from bench.wsclient import FeedConnection

COIN = "BTCUSDT"


def _updated(connection: FeedConnection, close: float) -> float | None:
    """When ``connection`` first got the COIN frame whose newest value is ``close``."""
    for arrived, payload in connection.updates:
        frame = json.loads(payload)
        if frame["coin"] == COIN and frame["values"] and frame["values"][-1] == close:
            return arrived
    return None


async def serve(ports: list[int], count: int, concurrency: int) -> None:
    received = {"frames": 0, "expected": count}
    updated: set[int] = set()  # clients with a frame since ``arm``: one may get more than one
    everyone = asyncio.Event()

    def note(connection: FeedConnection) -> None:
        received["frames"] += 1
        updated.add(id(connection))
        if len(updated) >= received["expected"]:
            everyone.set()

    nofile = load.raise_open_files_limit(count + 1000)
    clients = await load.open_idle(
        ports, count=count, concurrency=concurrency, keep_updates=True, on_update=note, time_limit=60.0
    )
    received["expected"] = len(clients.connections)
    reply(
        {
            "opened": len(clients.connections),
            "refused": clients.errors,
            "first_error": clients.first_error,
            "open_files_limit": nofile,
            "seconds": clients.wall,
        }
    )
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().split():
        if line[0] == "arm":
            clients.clear_updates()
            received["frames"] = 0
            updated.clear()
            everyone.clear()
            reply({"armed": len(clients.connections)})
        elif line[0] == "wait":
            close, seconds = float(line[1]), float(line[2])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(everyone.wait(), seconds)
            await asyncio.sleep(0.2)  # stragglers' frames
            arrivals = [(c.port, _updated(c, close)) for c in clients.connections]
            dropped = sum(1 for c in clients.connections if c.closed.done())
            got = [(port, t) for port, t in arrivals if t is not None]
            extra = received["frames"] - len(updated)
            reply({"arrivals": got, "missing": len(arrivals) - len(got), "dropped": dropped, "extra_frames": extra})
        elif line[0] == "quit":
            break
    await clients.close()
    reply({"closed": True})


def reply(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaleclient", description=__doc__.splitlines()[0])
    parser.add_argument("--ports", required=True, help="comma-separated daphne ports")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=100)
    args = parser.parse_args(argv)
    asyncio.run(serve([int(p) for p in args.ports.split(",")], args.count, args.concurrency))
    return 0


if __name__ == "__main__":
    sys.exit(main())
