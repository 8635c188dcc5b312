"""One load-client process of the 10,000-client fan-out (``bench/scenarios/scale.py``).

``python -m bench.scaleclient --ports P1,P2 --count N`` opens N idle clients on
``/`` spread over the ports (:class:`bench.epollclients.IdleSockets`: one
``epoll``, no event loop, so the clients take little of the CPU the daphnes
they time need), prints one JSON line
``{"opened", "refused", "first_error", "open_files_limit", "seconds"}``, then
answers one JSON line per command read from stdin:

* ``arm``: forget the frames received so far; ``{"armed": n}``.
* ``wait <close> <seconds>``: wait until every client has a frame (or the time
  is up), then 0.2 s for stragglers; ``{"arrivals": [[port, wall time]],
  "reads": [[port, wall time]], "missing": n, "dropped": n, "extra_frames": n}``:
  for each client, its first frame of BTCUSDT whose newest value is ``<close>``
  (every frame is decoded and checked), when its bytes reached the client's
  socket (``arrivals``: the kernel's receive time, ``SO_TIMESTAMPNS``) and when
  this process read them (``reads``); ``missing`` clients without one,
  ``dropped`` clients the server closed, ``extra_frames`` frames beyond one per
  client.
* ``quit``: close every client (close handshake) and exit.

The scenario runs two of these, so no one process reads all 10,000 sockets.
They share the cores with the daphnes they time: the kernel's receive time keeps
their own scheduling delays out of the figure (``reads`` shows them).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from bench import load
from bench.epollclients import IdleSockets

COIN = "BTCUSDT"
STRAGGLERS_SECONDS = 0.2
OPEN_SECONDS = 60.0


class Commands:
    """stdin, read without blocking the sockets: whole lines as they come."""

    def __init__(self, sockets: IdleSockets) -> None:
        self.fd = sys.stdin.fileno()
        os.set_blocking(self.fd, False)
        sockets.epoll.register(self.fd)
        self._pending = b""
        self.ended = False

    def lines(self) -> list[list[str]]:
        try:
            data = os.read(self.fd, 4096)
        except BlockingIOError:
            return []
        if not data:
            self.ended = True
        *lines, self._pending = (self._pending + data).split(b"\n")
        return [line.decode().split() for line in lines if line.strip()]


def serve(ports: list[int], count: int, concurrency: int) -> None:
    nofile = load.raise_open_files_limit(count + 1000)
    sockets = IdleSockets(ports, count)
    seconds = sockets.open(concurrency, OPEN_SECONDS)
    opened = sockets.ready
    status = {"opened": opened, "refused": sockets.errors, "first_error": sockets.first_error}
    reply(status | {"open_files_limit": nofile, "seconds": seconds})
    commands = Commands(sockets)
    waiting: tuple[float, float, float] | None = None  # (close, deadline, reply at: once everyone has a frame)
    while not commands.ended:
        for fd in sockets.poll(0.05 if waiting else 1.0):
            if fd != commands.fd:
                continue
            for line in commands.lines():
                if line[0] == "arm":
                    sockets.clear()
                    reply({"armed": sockets.ready})
                elif line[0] == "wait":
                    now = time.monotonic()
                    waiting = (float(line[1]), now + float(line[2]), now + float(line[2]) + STRAGGLERS_SECONDS)
                elif line[0] == "quit":
                    commands.ended = True
        if waiting is not None:
            close, deadline, reply_at = waiting
            now = time.monotonic()
            if sockets.updated >= opened and reply_at > now + STRAGGLERS_SECONDS:
                reply_at = now + STRAGGLERS_SECONDS
                waiting = (close, deadline, reply_at)
            if now >= reply_at:
                waiting = None
                got, missing = sockets.arrivals(COIN, close)
                status = {"missing": missing, "dropped": sockets.dropped, "arrivals": [(p, at) for p, at, _ in got]}
                reply(
                    status | {"reads": [(p, at) for p, _, at in got], "extra_frames": sockets.frames - sockets.updated}
                )
    sockets.close()
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
    serve([int(p) for p in args.ports.split(",")], args.count, args.concurrency)
    return 0


if __name__ == "__main__":
    sys.exit(main())
