"""Load patterns over :mod:`bench.wsclient`: a connect storm, idle clients, churn.

Every loop is bounded in count and in time.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from bench.wsclient import FeedConnection, open_connection

T = TypeVar("T")


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


async def pool(items: Sequence[T], work: Callable[[T], Awaitable[object]], *, concurrency: int) -> tuple[int, str]:
    """``work(item)`` for every item, ``concurrency`` at a time; return (failures, the first failure)."""
    queue = list(reversed(items))
    errors, first_error = 0, ""

    async def worker() -> None:
        nonlocal errors, first_error
        while queue:
            try:
                await work(queue.pop())
            except Exception as exc:  # counted, reported; the load goes on
                errors += 1
                first_error = first_error or f"{type(exc).__name__}: {exc}"

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(items)))))
    return errors, first_error


async def storm(port: int, *, connections: int, concurrency: int, time_limit: float = 30.0) -> StormResult:
    """``connections`` clients, ``concurrency`` in flight, each connecting, reading five frames, closing."""
    result = StormResult()

    async def one(_: int) -> None:
        connection, start, ready = await open_connection(port, time_limit=time_limit)
        result.latencies.append(ready - start)
        if not result.frames:
            result.frames = list(connection.frames)
        await connection.close(time_limit)

    began = time.monotonic()
    result.errors, result.first_error = await pool(range(connections), one, concurrency=concurrency)
    result.wall = time.monotonic() - began
    return result


@dataclass
class IdleClients:
    connections: list[FeedConnection]
    errors: int
    first_error: str
    wall: float

    async def close(self, concurrency: int = 200, time_limit: float = 10.0) -> None:
        await pool(self.connections, lambda c: c.close(time_limit), concurrency=concurrency)
        self.connections = []


async def open_many(
    items: Sequence[T], factory: Callable[[T], FeedConnection], *, concurrency: int, time_limit: float = 30.0
) -> IdleClients:
    """A connection per item from ``factory(item)``, ``concurrency`` at a time; each has read its initial frames."""
    opened: list[FeedConnection] = []

    async def one(item: T) -> None:
        connection = factory(item)
        await open_connection(connection.port, time_limit=time_limit, factory=lambda: connection)
        opened.append(connection)

    began = time.monotonic()
    errors, first_error = await pool(items, one, concurrency=concurrency)
    return IdleClients(opened, errors, first_error, time.monotonic() - began)


async def open_idle(ports: list[int], *, count: int, concurrency: int, keep_updates: bool = False) -> IdleClients:
    """Open ``count`` connections to ``/`` spread evenly over ``ports``; each has read its initial frames."""
    clients = [ports[i % len(ports)] for i in range(count)]
    return await open_many(
        clients, lambda port: FeedConnection(port, keep_updates=keep_updates), concurrency=concurrency
    )
