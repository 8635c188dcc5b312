"""Load patterns over :mod:`bench.wsclient`: a connect storm, idle clients, churn.

Every loop is bounded in count and in time.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.wsclient import FeedConnection, open_connection


def raise_open_files_limit(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards ``wanted`` (capped by the hard limit); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


@dataclass
class StormResult:
    latencies: list[float] = field(default_factory=list)  # seconds, connect start -> fifth frame
    errors: int = 0
    first_error: str = ""
    wall: float = 0.0
    frames: list[bytes] = field(default_factory=list)  # the initial frames of one connection

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall if self.wall else 0.0


async def storm(port: int, *, connections: int, concurrency: int, time_limit: float = 30.0) -> StormResult:
    """``connections`` clients, ``concurrency`` in flight, each connecting, reading five frames, closing."""
    result = StormResult()
    remaining = connections

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            try:
                connection, start, ready = await open_connection(port, time_limit=time_limit)
            except Exception as exc:  # counted, reported; the storm goes on
                result.errors += 1
                result.first_error = result.first_error or f"{type(exc).__name__}: {exc}"
                continue
            result.latencies.append(ready - start)
            if not result.frames:
                result.frames = list(connection.frames)
            await connection.close(time_limit)

    began = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, connections))))
    result.wall = time.monotonic() - began
    return result


@dataclass
class IdleClients:
    connections: list[FeedConnection]
    errors: int
    first_error: str
    wall: float

    async def close(self, concurrency: int = 200, time_limit: float = 10.0) -> None:
        pending = list(self.connections)

        async def worker() -> None:
            while pending:
                await pending.pop().close(time_limit)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        self.connections = []

    def clear_updates(self) -> None:
        for connection in self.connections:
            connection.updates.clear()


async def open_idle(
    ports: list[int],
    *,
    count: int,
    concurrency: int,
    keep_updates: bool = False,
    on_update: Callable[[FeedConnection], None] | None = None,
    time_limit: float = 30.0,
) -> IdleClients:
    """Open ``count`` connections spread evenly over ``ports``; each has read its initial frames."""
    opened: list[FeedConnection] = []
    errors = 0
    first_error = ""
    queue = [ports[i % len(ports)] for i in range(count)]

    async def worker() -> None:
        nonlocal errors, first_error
        while queue:
            port = queue.pop()
            try:
                connection, _, _ = await open_connection(
                    port,
                    time_limit=time_limit,
                    factory=lambda p=port: FeedConnection(p, keep_updates=keep_updates, on_update=on_update),
                )
            except Exception as exc:
                errors += 1
                first_error = first_error or f"{type(exc).__name__}: {exc}"
                continue
            opened.append(connection)

    began = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))
    return IdleClients(opened, errors, first_error, time.monotonic() - began)
